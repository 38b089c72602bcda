"""The data-quality report: drift (PSI) against the training profile, JSON summary, safe HTML."""

import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from models.profile import FeatureProfile, ModelProfile
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.reading import read_upload
from retainwise.uploads.report import (
    build_report,
    drift_from_counts,
    numeric_shares,
    psi,
    render_html,
    summary_markdown,
    upload_counts,
)
from retainwise.uploads.validation import validate_upload


def training_bins(values: np.ndarray) -> tuple[list[float], list[float]]:
    """Decile edges (outer ones included) and the share per bin, missing share last."""
    present = values[~np.isnan(values)]
    edges = np.unique(np.quantile(present, np.linspace(0, 1, 11)))
    counts = np.bincount(
        np.searchsorted(edges[1:-1], present, side="right"), minlength=len(edges) - 1
    )
    shares = list(counts / len(values)) + [float(np.isnan(values).mean())]
    return list(edges), shares


RNG = np.random.default_rng(11)
TRAIN_TENURE = RNG.uniform(0, 72, 5000)
EDGES, SHARES = training_bins(TRAIN_TENURE)
PROFILE = ModelProfile(
    "customer_id",
    "Churn",
    [
        FeatureProfile("tenure", "numeric", 0.0, 72.0, bin_edges=EDGES, bin_shares=SHARES),
        FeatureProfile(
            "contract",
            "categorical",
            categories=["Monthly", "Yearly"],
            category_shares={"Monthly": 0.6, "Yearly": 0.4},
        ),
        FeatureProfile("plan", "categorical", categories=["a", "b"]),  # no training shares
    ],
)
MODEL = SimpleNamespace(name="churn", version="3", profile=PROFILE)


def upload_of(tenure, contract, plan=None):
    n = len(tenure)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "tenure": [("" if np.isnan(t) else f"{t:.3f}") for t in tenure],
            "contract": contract,
            "plan": plan if plan is not None else ["a"] * n,
        }
    )
    return validate_upload(read_upload(frame.to_csv(index=False).encode()), PROFILE)


def results_for(upload):
    n = len(upload.accepted)
    return pd.DataFrame(
        {
            "customer_id": upload.customer_ids.to_numpy(),
            "churn_probability": np.full(n, 0.5),
            "churn_risk": ["HIGH"] * (n // 2) + ["LOW"] * (n - n // 2),
            "predicted_churn": True,
        }
    )


def test_psi_is_zero_for_the_same_distribution_and_grows_with_shift():
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert psi([0.5, 0.5], [0.45, 0.55]) < 0.1
    assert psi([0.5, 0.5], [0.1, 0.9]) > ScoringPolicy.drift_alert_psi
    assert np.isfinite(psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]))  # empty bucket floored


def test_numeric_shares_use_the_training_bins_open_ended_and_count_missing_last():
    feature = FeatureProfile(
        "x", "numeric", 0.0, 10.0, bin_edges=[0.0, 5.0, 10.0], bin_shares=[0.5, 0.5, 0.0]
    )
    values = pd.Series([-1.0, 1.0, 6.0, 99.0, np.nan])
    assert numeric_shares(values, feature).tolist() == [0.4, 0.4, 0.2]
    assert numeric_shares(values, replace(feature, bin_edges=[], bin_shares=[])) is None


def drift(upload) -> dict[str, float]:
    return drift_from_counts(upload_counts(upload, None, PROFILE), PROFILE)


def test_same_population_is_not_drift_and_a_shifted_one_is_flagged():
    same = upload_of(
        RNG.uniform(0, 72, 3000), RNG.choice(["Monthly", "Yearly"], 3000, p=[0.6, 0.4])
    )
    shifted = upload_of(RNG.uniform(50, 72, 3000), ["Yearly"] * 3000)
    assert all(score < 0.05 for score in drift(same).values())
    scores = drift(shifted)
    assert set(scores) == {"tenure", "contract"}  # no training shares for plan: not measured
    assert (
        scores["tenure"] > ScoringPolicy.drift_alert_psi
        and scores["contract"] > ScoringPolicy.drift_alert_psi
    )


def test_report_accounts_for_rows_and_describes_each_column():
    tenure = RNG.uniform(0, 72, 100)
    tenure[:10] = np.nan
    tenure[10] = 900.0  # out of range -> rejected
    upload = upload_of(tenure, ["Monthly"] * 50 + ["Weekly"] * 50, ["a"] * 99 + ["zzz"])
    report = build_report(upload, results_for(upload), MODEL, "p-1")
    assert json.loads(json.dumps(report)) == report  # plain JSON
    assert (report["rows_total"], report["rows_scored"], report["rows_rejected"]) == (100, 99, 1)
    assert report["rows_total"] == report["rows_scored"] + report["rows_rejected"]
    assert report["reject_reasons"] == {"out of range: tenure": 1}
    assert report["out_of_range"] == {"tenure": 1}
    assert report["unknown_categories"] == {"contract": 50, "plan": 1}
    tenure_column = report["columns"]["tenure"]
    assert tenure_column["missing_share"] == 0.1 and tenure_column["out_of_range"] == 1
    assert report["columns"]["contract"]["unknown_values"] == {"Weekly": 50}
    assert report["columns"]["contract"]["drifted"] and "contract" in report["drifted_features"]
    assert report["columns"]["plan"]["psi"] is None
    assert report["risk_counts"] == {"HIGH": 49, "MEDIUM": 0, "LOW": 50}
    assert report["model_version"] == "3" and report["status"] == "COMPLETED"
    histogram = report["probability_histogram"]  # the web app's chart: every scored row once
    assert len(histogram) == 10 and sum(histogram) == 99


def test_the_report_json_keeps_its_key_order():
    """report.json is read by people and by other programs: its keys stay where they were."""
    upload = upload_of(RNG.uniform(0, 72, 20), ["Monthly"] * 20)
    report = json.loads(json.dumps(build_report(upload, results_for(upload), MODEL, "p-1")))
    assert list(report) == [
        "prediction_id", "status", "error", "model_name", "model_version", "source",
        "rows_total", "rows_scored", "rows_rejected", "reject_reasons", "risk_counts",
        "probability_histogram", "unknown_categories", "out_of_range", "drift_threshold",
        "drifted_features", "ignored_columns", "columns", "files",
    ]  # fmt: skip
    drift = ["missing", "missing_share", "training_missing_share", "psi", "drifted"]
    assert list(report["columns"]["tenure"]) == ["kind", "unparseable", "out_of_range", *drift]
    assert list(report["columns"]["contract"]) == ["kind", "unknown", "unknown_values", *drift]


def test_failed_upload_report_has_no_scores_but_the_reason():
    upload = validate_upload(
        read_upload(b"customer_id,tenure,contract,plan\nC1,x,Monthly,a\n"), PROFILE
    )
    report = build_report(upload, None, MODEL, "p-2")
    assert report["status"] == "FAILED" and report["error"].startswith("1 of 1 rows are invalid")
    assert report["rows_scored"] == 0 and report["rows_rejected"] == 1
    assert report["probability_histogram"] == [0] * 10


def test_html_escapes_everything_from_the_customers_file():
    upload = upload_of(RNG.uniform(0, 72, 4), ["<script>alert(1)</script>"] * 4)
    upload.quality = replace(upload.quality, ignored_columns=["<img src=x onerror=alert(2)>"])
    page = render_html(build_report(upload, results_for(upload), MODEL, "p-3"))
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page
    assert page.startswith("<!doctype html>") and "Data-quality report" in page


def test_summary_markdown_is_a_table_with_the_report_key():
    upload = upload_of(RNG.uniform(0, 72, 20), ["Monthly"] * 20)
    report = build_report(upload, results_for(upload), MODEL, "p-4")
    text = summary_markdown(report, "results/p-4/report.html")
    assert "| rows total | 20 |" in text and "| rows scored | 20 |" in text
    assert "`results/p-4/report.html`" in text and "retainwise report p-4" in text


@pytest.mark.parametrize("bins", [[], [0.0, 1.0]])
def test_profiles_without_training_distribution_round_trip(bins):
    profile = ModelProfile("id", "y", [FeatureProfile("x", "numeric", 0.0, 1.0, bin_edges=bins)])
    assert ModelProfile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


def test_the_drift_alert_level_is_the_policys():
    shifted = upload_of(RNG.uniform(50, 72, 3000), ["Yearly"] * 3000)
    flagged = build_report(shifted, None, MODEL)
    assert flagged["drift_threshold"] == ScoringPolicy.drift_alert_psi
    assert set(flagged["drifted_features"]) == {"tenure", "contract"}
    relaxed = build_report(shifted, None, MODEL, drift_alert_psi=100.0)
    assert relaxed["drift_threshold"] == 100.0 and relaxed["drifted_features"] == []
