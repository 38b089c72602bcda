"""Outcomes files: parse `customer_id, churned[, observed_at]` and join them to an upload's scores.

Every row of the file is accounted for: matched to a scored customer, or counted as unmatched (no
scored row has that id), invalid (churned is not 1/0, yes/no, true/false; a bad observed_at) or
duplicate (the id appeared earlier in the file). Pure pandas: the caller reads S3 and the database.

The caller reads only the scored rows of the ids a file names (`outcome_ids`), never a whole
results file. And one account's outcomes never retrain a model others use by themselves: a
`degraded` alert fewer than MIN_DEGRADED_ACCOUNTS accounts' own labels support waits for an
operator (`gate_retraining`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from retainwise.config.errors import UploadRejected
from retainwise.modelops.monitoring import (
    AUC_FLOOR,
    CALIBRATION_CAP,
    MIN_LABELLED_ROWS,
    Alert,
    Event,
    ModelFigures,
)
from retainwise.uploads.output import neutralise_formulas

CHURNED = {"1": 1, "yes": 1, "true": 1, "y": 1, "0": 0, "no": 0, "false": 0, "n": 0}
EXAMPLES = 10
DEGRADED = Event.DEGRADED  # the event the train-model automation starts on
FOR_REVIEW = Event.DEGRADED_REVIEW  # the same finding, for an operator to act on
MIN_DEGRADED_ACCOUNTS = 2


@dataclass
class JoinedOutcomes:
    rows: pd.DataFrame  # customer_id, churned, observed_at, churn_probability, churn_risk
    rows_total: int
    unmatched: int = 0
    invalid: int = 0
    duplicate: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "rows_total": self.rows_total,
            "matched": len(self.rows),
            "unmatched": self.unmatched,
            "invalid": self.invalid,
            "duplicate": self.duplicate,
            "examples": self.examples,
        }


def parse_outcomes(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Normalised columns and a per-row reason ('' when the row is usable)."""
    columns = {str(c).strip().lower(): c for c in frame.columns}
    missing = [c for c in ("customer_id", "churned") if c not in columns]
    if missing:
        raise UploadRejected(
            f"the outcomes file needs columns customer_id and churned; missing "
            f"{', '.join(missing)} (columns are {', '.join(map(str, frame.columns))})"
        )
    ids = frame[columns["customer_id"]].astype("string").str.strip()
    churned = frame[columns["churned"]].astype("string").str.strip().str.lower().map(CHURNED)
    observed_text = (
        frame[columns["observed_at"]]
        if "observed_at" in columns
        else pd.Series(pd.NA, index=frame.index, dtype="string")
    )
    observed = pd.to_datetime(observed_text, errors="coerce", utc=True, format="mixed")
    reason = pd.Series("", index=frame.index, dtype=object)
    reason[observed.isna() & observed_text.notna()] = "observed_at is not a date"
    reason[churned.isna()] = "churned is not 1/0, yes/no or true/false"
    reason[ids.isna() | (ids == "")] = "customer_id is empty"
    reason[(reason == "") & ids.duplicated()] = "duplicate customer_id"
    parsed = pd.DataFrame(
        {
            "customer_id": neutralise_formulas(ids.astype(object)),
            "churned": churned,
            "observed_at": observed,
        }
    )
    return parsed, reason


def join_outcomes(frame: pd.DataFrame, results: pd.DataFrame) -> JoinedOutcomes:
    """Match outcome rows to the upload's result rows on customer_id (results are the upload's own,
    so the join is on account, prediction id and customer id)."""
    parsed, reason = parse_outcomes(frame)
    scored = results.drop_duplicates("customer_id", keep=False).set_index("customer_id")
    usable = parsed[reason == ""]
    matched = usable["customer_id"].isin(scored.index)
    joined = usable[matched].join(scored[["churn_probability", "churn_risk"]], on="customer_id")
    joined["churn_probability"] = joined["churn_probability"].astype(float)
    examples = {
        "unmatched": usable.loc[~matched, "customer_id"].astype(str).head(EXAMPLES).tolist()
    }
    for why in sorted(set(reason) - {""}):
        examples[why] = [str(i + 2) for i in reason.index[reason == why][:EXAMPLES]]  # file lines
    return JoinedOutcomes(
        joined.reset_index(drop=True),
        len(frame),
        int((~matched).sum()),
        int(((reason != "") & (reason != "duplicate customer_id")).sum()),
        int((reason == "duplicate customer_id").sum()),
        examples,
    )


def outcome_ids(frame: pd.DataFrame) -> set[str]:
    """The customer ids a file could match (as results store them): what to read of the results."""
    parsed, reason = parse_outcomes(frame)
    return set(parsed.loc[reason == "", "customer_id"].astype(str))


def degraded_accounts(figures: ModelFigures, version: str) -> set[str]:
    """Accounts whose own labelled rows (enough of them) show `version` degraded."""
    return {
        str(group.account)
        for group in figures.accounts
        if str(group.model_version) == str(version)
        and group.realised.rows >= MIN_LABELLED_ROWS
        and (
            (group.realised.roc_auc is not None and group.realised.roc_auc < AUC_FLOOR)
            or group.realised.expected_calibration_error > CALIBRATION_CAP
        )
    }


def gate_retraining(figures: ModelFigures) -> list[Alert]:
    """The alerts to emit: a `degraded` one fewer than MIN_DEGRADED_ACCOUNTS accounts support
    becomes FOR_REVIEW, which starts no retraining (one tenant's labels may be wrong or hostile)."""
    gated = []
    for alert in figures.alerts:
        accounts = degraded_accounts(figures, alert.model_version)
        if alert.event == DEGRADED and len(accounts) < MIN_DEGRADED_ACCOUNTS:
            alert = replace(alert, event=FOR_REVIEW, accounts=sorted(accounts))
        gated.append(alert)
    return gated
