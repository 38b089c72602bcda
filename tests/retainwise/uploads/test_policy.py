"""ScoringPolicy: built once from Settings; its defaults are Settings' own."""

from __future__ import annotations

import pytest

from retainwise.config.errors import UploadRejected
from retainwise.config.settings import Settings
from retainwise.uploads.policy import ScoringPolicy


def test_the_defaults_are_the_settings_defaults():
    assert ScoringPolicy() == ScoringPolicy.from_settings(Settings.model_construct())


def test_every_field_comes_from_the_settings(monkeypatch):
    values = {
        "RETAINWISE_MAX_UPLOAD_BYTES": "5000",
        "RETAINWISE_MAX_COLUMNS": "7",
        "RETAINWISE_MAX_RECORD_BYTES": "300",
        "RETAINWISE_CHUNKED_ABOVE_BYTES": "1000",
        "RETAINWISE_CHUNK_BYTES": "400",
        "RETAINWISE_MAX_REJECTED_SHARE": "0.1",
        "RETAINWISE_TOP_REASONS": "true",
        "RETAINWISE_DRIFT_ALERT_PSI": "0.2",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    policy = ScoringPolicy.from_settings(Settings())
    limits = policy.limits
    assert (limits.max_bytes, limits.max_columns, limits.max_record_bytes) == (5000, 7, 300)
    assert limits.max_workbook_bytes == 1000  # workbooks are read whole: no larger than that
    assert (policy.chunked_above_bytes, policy.chunk_bytes) == (1000, 400)
    assert (policy.max_rejected_share, policy.reasons, policy.drift_alert_psi) == (0.1, True, 0.2)


def test_a_file_over_the_limit_is_refused_and_a_large_one_chunked():
    policy = ScoringPolicy.from_settings(
        Settings.model_construct(max_upload_bytes=5_000_000, chunked_above_bytes=1_000_000)
    )
    assert not policy.is_large(1_000_000) and policy.is_large(1_000_001)
    with pytest.raises(UploadRejected, match="the file is 6 MB; the limit is 5 MB"):
        policy.is_large(6_000_000)


def test_an_uploads_own_carried_columns_win_over_its_accounts_and_the_value_column_follows():
    from datetime import UTC, datetime

    from retainwise.adapters.accounts import Account

    account = Account(
        "acme", datetime(2026, 12, 3, tzinfo=UTC), None, ("churn",), None, "Charges", ("email",)
    )
    policy = ScoringPolicy()
    assert policy.for_upload(account).carry == ("email",)
    assert policy.for_upload(account, ("id",)).carry == ("id",)
    assert policy.for_upload(account).value_column == "Charges"
    assert policy.for_upload(None, ("id",)) == ScoringPolicy(carry=("id",))
