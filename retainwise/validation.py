"""Validate an upload against the model version's profile with Great Expectations.

File-level problems raise UploadRejected; row-level problems reject the row with a reason, so
rows_total = rows_scored + rows_rejected always holds.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pandas as pd

from models.features import blank_to_missing, to_number
from models.profile import ModelProfile
from retainwise.errors import UploadRejected
from retainwise.reading import match_columns

ID = "customer_id"
RANGE_MARGIN = 0.5  # numbers may stray this share of the training span beyond its min and max


@dataclass
class ValidatedUpload:
    accepted: pd.DataFrame           # rows to score; index = 0-based data row
    customer_ids: pd.Series          # aligned with `accepted`
    rejects: pd.DataFrame            # row_number, customer_id, reason
    rows_total: int
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_rejected(self) -> int:
        return len(self.rejects)


def require_columns(frame: pd.DataFrame, profile: ModelProfile) -> pd.DataFrame:
    required = ([profile.id_column] if profile.id_column else []) + profile.feature_names
    frame = match_columns(frame, required)
    missing = [name for name in required if name not in frame.columns]
    if missing:
        hints = []
        for name in missing:
            close = difflib.get_close_matches(name, list(frame.columns), n=1, cutoff=0.6)
            if close:
                hints.append(f"for {name!r} did you mean {close[0]!r}?")
        hint = f" ({'; '.join(hints)})" if hints else ""
        raise UploadRejected(f"missing required columns: {', '.join(missing)}{hint}")
    return frame


def numeric_bounds(profile: ModelProfile) -> dict[str, tuple[float, float]]:
    bounds = {}
    for feature in profile.features:
        if feature.kind == "numeric" and feature.minimum is not None:
            span = max(feature.maximum - feature.minimum, 1.0)
            bounds[feature.name] = (feature.minimum - RANGE_MARGIN * span,
                                    feature.maximum + RANGE_MARGIN * span)
    return bounds


def build_expectations(profile: ModelProfile) -> list[tuple[Any, str]]:
    """(expectation, reason template) pairs derived from the training profile."""
    import great_expectations as gx

    checks = [(gx.expectations.ExpectColumnValuesToNotBeNull(column=ID), "customer id is missing")]
    for name, (low, high) in numeric_bounds(profile).items():
        checks.append((gx.expectations.ExpectColumnValuesToBeBetween(
            column=name, min_value=low, max_value=high),
            f"{name} is outside the plausible range {low:g} to {high:g}"))
    return checks


@lru_cache(maxsize=1)
def _batch_definition():
    """GX's ephemeral context takes about a second to build; one per process is enough."""
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = context.data_sources.add_pandas("uploads").add_dataframe_asset("upload")
    return asset.add_batch_definition_whole_dataframe("whole upload")


def failing_rows(checked: pd.DataFrame, profile: ModelProfile) -> dict[int, str]:
    """Run the expectation suite; map each failing row's index to its first failure reason."""
    import great_expectations as gx

    checks = build_expectations(profile)
    suite = gx.ExpectationSuite(name="upload", expectations=[e for e, _ in checks])
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": checked})
    result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    reasons: dict[int, str] = {}
    for (_, reason), outcome in zip(checks, result.results):
        if outcome.exception_info.get("raised_exception"):
            raise RuntimeError(f"validation could not run: {outcome.exception_info}")
        for index in outcome.result.get("unexpected_index_list") or []:
            reasons.setdefault(int(index), reason)
    return reasons


def validate_upload(frame: pd.DataFrame, profile: ModelProfile,
                    max_rejected_share: float = 0.5) -> ValidatedUpload:
    frame = require_columns(frame, profile).reset_index(drop=True)
    rows_total = len(frame)
    if profile.id_column:
        ids = blank_to_missing(frame[profile.id_column])
    else:
        ids = pd.Series(range(1, rows_total + 1), dtype="object")
    reasons: dict[int, str] = {}
    checked = pd.DataFrame({ID: ids})
    for name in profile.numeric:
        raw = blank_to_missing(frame[name])
        parsed = to_number(raw)
        for index in parsed.index[raw.notna() & parsed.isna()]:
            reasons.setdefault(int(index), f"{name}: {raw[index]!r} is not a number")
        checked[name] = parsed
    for index, reason in failing_rows(checked, profile).items():
        reasons.setdefault(index, reason)
    duplicated = ids.notna() & ids.duplicated(keep="first")
    first_seen = {v: i for i, v in reversed(list(enumerate(ids)))}
    for index in ids.index[duplicated]:
        reasons.setdefault(int(index), f"duplicate customer id; first seen on row "
                                       f"{first_seen[ids[index]] + 1}")
    rejected = sorted(reasons)
    rejects = pd.DataFrame({
        "row_number": [i + 1 for i in rejected],
        "customer_id": [ids[i] for i in rejected],
        "reason": [reasons[i] for i in rejected],
    })
    if rows_total and len(rejected) / rows_total > max_rejected_share:
        examples = "; ".join(f"row {r}: {m}" for r, m in
                             zip(rejects["row_number"][:3], rejects["reason"][:3]))
        raise UploadRejected(
            f"{len(rejected)} of {rows_total} rows are invalid (more than "
            f"{max_rejected_share:.0%}); for example {examples}")
    keep = frame.index.difference(rejected)
    report = {"rows_total": rows_total, "rows_rejected": len(rejected),
              "unknown_categories": unknown_categories(frame.loc[keep], profile)}
    return ValidatedUpload(frame.loc[keep], ids.loc[keep], rejects, rows_total, report)


def unknown_categories(frame: pd.DataFrame, profile: ModelProfile) -> dict[str, int]:
    """Values the model never saw in training: scored, but worth telling the customer about."""
    counts = {}
    for feature in profile.features:
        if feature.kind == "categorical":
            values = blank_to_missing(frame[feature.name]).dropna().astype(str)
            unknown = int((~values.isin(feature.categories)).sum())
            if unknown:
                counts[feature.name] = unknown
    return counts
