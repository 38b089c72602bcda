"""Champion and challenger side by side: on the stored evaluation set (as the promotion gate scores
them) and on every upload with outcomes, from the version that scored it and from shadow files.

On an upload, the version that scored it has its probabilities in the outcomes table; the other
version has them only if it scored the upload in shadow (results/<account>/<id>/shadow-v<N>.csv).
`paired` pools the labelled rows both versions scored: the like-for-like comparison.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import pandas as pd

from models.monitoring import Realised, realised_performance
from models.profile import ModelProfile

SHOWN = ("roc_auc", "pr_auc", "brier", "precision_at_threshold", "recall_at_threshold")


class Source(StrEnum):
    """How a version's probabilities for an upload's rows came about."""

    SCORED = "scored"  # the version scored the upload
    SHADOW = "shadow"  # it scored the upload in shadow


@dataclass(frozen=True)
class VersionFigures:
    """A version's realised figures on some labelled rows (`source` on a single upload)."""

    rows: int
    roc_auc: float | None
    pr_auc: float | None
    brier: float
    precision_at_threshold: float | None
    recall_at_threshold: float | None
    source: Source | None = None

    @classmethod
    def of(cls, realised: Realised, source: Source | None = None) -> VersionFigures:
        return cls(
            realised.rows,
            realised.roc_auc,
            realised.pr_auc,
            realised.brier,
            realised.precision_at_threshold,
            realised.recall_at_threshold,
            source,
        )

    def to_json(self) -> dict[str, object]:
        source = {"source": self.source.value} if self.source is not None else {}
        return {**source, "rows": self.rows, **{name: getattr(self, name) for name in SHOWN}}


@dataclass(frozen=True)
class UploadComparison:
    """The versions that scored one labelled upload (itself or in shadow), side by side."""

    prediction_id: str
    account: str
    scored_by: str
    labelled_rows: int
    versions: dict[str, VersionFigures]

    def to_json(self) -> dict[str, object]:
        return {
            "prediction_id": self.prediction_id,
            "account": self.account,
            "scored_by": self.scored_by,
            "labelled_rows": self.labelled_rows,
            "versions": {v: figures.to_json() for v, figures in self.versions.items()},
        }


@dataclass(frozen=True)
class Paired:
    """Every version on the pooled rows all of them scored: the like-for-like comparison."""

    labelled_rows: int
    versions: dict[str, VersionFigures] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "labelled_rows": self.labelled_rows,
            "versions": {v: figures.to_json() for v, figures in self.versions.items()},
        }


@dataclass(frozen=True)
class OutcomesComparison:
    uploads: list[UploadComparison]
    paired: Paired

    def to_json(self) -> dict[str, object]:
        return {"uploads": [u.to_json() for u in self.uploads], "paired": self.paired.to_json()}


@dataclass(frozen=True)
class Holdout:
    """The gate's figures of each version on the stored test split."""

    evaluated_on: str
    versions: dict[str, dict[str, float]]

    def to_json(self) -> dict[str, object]:
        return {"evaluated_on": self.evaluated_on, "versions": self.versions}


@dataclass(frozen=True)
class Comparison:
    """Everything `retainwise model compare` shows."""

    model: str
    account: str | None
    champion: str
    challenger: str | None
    holdout: Holdout
    outcomes: OutcomesComparison

    @property
    def versions(self) -> list[str]:
        return [self.champion] + ([self.challenger] if self.challenger else [])

    def to_json(self) -> dict[str, object]:
        """The JSON line `retainwise model compare` prints last."""
        return {
            "model": self.model,
            "account": self.account,
            "champion": self.champion,
            "challenger": self.challenger,
            "holdout": self.holdout.to_json(),
            **self.outcomes.to_json(),
        }


def _figures(
    rows: pd.DataFrame, column: str, profile: ModelProfile, source: Source | None = None
) -> VersionFigures:
    realised = realised_performance(
        rows["churned"].to_numpy(int),
        rows[column].to_numpy(float),
        profile.threshold,
        profile.cutoffs,
    )
    return VersionFigures.of(realised, source)


def compare_on_outcomes(
    labelled: pd.DataFrame,
    versions: list[str],
    shadow_of: Callable[[str, str, str], pd.DataFrame | None],
    profile_of: Callable[[str], ModelProfile],
) -> OutcomesComparison:
    """Per labelled upload, each version's realised figures where it scored the rows (itself or
    in shadow); `paired`: pooled over the rows every version scored. Pure but for the callbacks."""
    uploads, paired = [], []
    for (prediction_id, account, scored_by), rows in labelled.groupby(
        ["prediction_id", "account", "model_version"], sort=False
    ):
        rows = rows[["customer_id", "churned"]].assign(
            **{f"p{scored_by}": rows["churn_probability"].astype(float)}
        )
        sources = {str(scored_by): Source.SCORED}
        for version in versions:
            if version == str(scored_by):
                continue
            shadow = shadow_of(account, prediction_id, version)
            if shadow is not None:
                rows = rows.merge(
                    shadow.rename(columns={"churn_probability": f"p{version}"}),
                    on="customer_id",
                    how="left",
                )
                sources[version] = Source.SHADOW
        figures = {
            v: _figures(rows.dropna(subset=[f"p{v}"]), f"p{v}", profile_of(v), source)
            for v, source in sources.items()
        }
        uploads.append(UploadComparison(prediction_id, account, str(scored_by), len(rows), figures))
        if all(v in sources for v in versions):
            paired.append(rows.dropna(subset=[f"p{v}" for v in versions]))
    both = pd.concat(paired) if paired else pd.DataFrame(columns=["churned"])
    pooled = {v: _figures(both, f"p{v}", profile_of(v)) for v in versions} if len(both) else {}
    return OutcomesComparison(uploads, Paired(len(both), pooled))


def outcomes_comparison(
    engine, s3, settings, name: str, versions: list[str], account: str | None = None
) -> OutcomesComparison:
    """compare_on_outcomes on the stored outcomes, shadow files and version profiles."""
    from retainwise.adapters import aws
    from retainwise.adapters.mlflow_registry import load_version
    from retainwise.adapters.outcomes import labelled_rows
    from retainwise.uploads.output import shadow_key

    def shadow_of(upload_account: str, prediction_id: str, version: str) -> pd.DataFrame | None:
        key = shadow_key(upload_account, prediction_id, version)
        if not aws.object_exists(s3, settings.bucket, key):
            return None
        return pd.read_csv(
            io.BytesIO(aws.get_bytes(s3, settings.bucket, key)),
            usecols=["customer_id", "churn_probability"],
            dtype={"customer_id": str},
        )

    return compare_on_outcomes(
        labelled_rows(engine, name, account),
        versions,
        shadow_of,
        lambda version: load_version(name, version, settings.tracking_uri).profile,
    )


def evaluate_version(name: str, version: str, rows, labels, settings) -> dict[str, float]:
    """A version's gate figures on labelled rows; one that cannot read them is refused (the
    promotion gate and `model compare` score versions the same way)."""
    from models.evaluation import evaluate_model
    from retainwise.adapters.mlflow_registry import load_version
    from retainwise.config.errors import PromotionRefused

    loaded = load_version(name, str(version), settings.tracking_uri)
    try:
        return evaluate_model(loaded.pipeline, loaded.profile, rows, labels)
    except ValueError as exc:
        raise PromotionRefused(
            f"cannot evaluate version {version} on the challenger's test set: {exc}",
            {"version": str(version)},
        ) from None


def compare_models(engine, s3, settings, name: str, account: str | None = None) -> Comparison:
    """Everything `retainwise model compare` shows, read from MLflow, the database and S3."""
    from retainwise.adapters.mlflow_registry import (
        CHALLENGER,
        CHAMPION,
        alias_version,
        evaluation_set,
    )
    from retainwise.config.errors import NoChampion

    champion = alias_version(name, CHAMPION, settings)
    challenger = alias_version(name, CHALLENGER, settings)
    if champion is None:
        raise NoChampion(f"{name!r} has no champion to compare")
    versions = [champion] + ([challenger] if challenger and challenger != champion else [])
    rows, labels = evaluation_set(name, versions[-1], settings)
    holdout = Holdout(
        f"test split stored with version {versions[-1]} ({len(labels)} rows)",
        {v: evaluate_version(name, v, rows, labels, settings) for v in versions},
    )
    return Comparison(
        model=name,
        account=account,
        champion=champion,
        challenger=versions[1] if len(versions) > 1 else None,
        holdout=holdout,
        outcomes=outcomes_comparison(engine, s3, settings, name, versions, account),
    )


def terminal_table(figures: Comparison) -> str:
    """One line per comparison (holdout, each labelled upload, the paired pool): ROC AUC and Brier
    of champion and challenger, '-' where a version did not score those rows."""
    versions = figures.versions
    header = ["on", "rows"] + [
        f"{role} v{v} {metric}"
        for metric in ("AUC", "Brier")
        for role, v in zip(("champion", "challenger"), versions, strict=False)
    ]

    def cells(
        what: str, rows, by_version: dict[str, dict[str, float]], note=lambda v: ""
    ) -> list[str]:
        shown = []
        for metric in ("roc_auc", "brier"):
            for v in versions:
                value = by_version.get(v, {}).get(metric)
                shown.append("-" if value is None else f"{value:.3f}{note(v)}")
        return [what, str(rows)] + shown

    def shown(by_version: dict[str, VersionFigures]) -> dict[str, dict[str, float]]:
        return {
            v: {k: x for k in ("roc_auc", "brier") if (x := getattr(f, k)) is not None}
            for v, f in by_version.items()
        }

    holdout = figures.holdout
    lines = [cells("holdout", int(next(iter(holdout.versions.values()))["rows"]), holdout.versions)]
    for u in figures.outcomes.uploads:
        lines.append(
            cells(
                f"upload {u.prediction_id[:8]} ({u.account})",
                u.labelled_rows,
                shown(u.versions),
                lambda v, u=u: (
                    " s" if v in u.versions and u.versions[v].source == Source.SHADOW else ""
                ),
            )
        )
    paired = figures.outcomes.paired
    lines.append(cells("outcomes both scored", paired.labelled_rows, shown(paired.versions)))
    widths = [max(len(row[i]) for row in [header] + lines) for i in range(len(header))]
    text = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in [header] + lines
    ]
    text.append(f"holdout: {holdout.evaluated_on}; 's': scored in shadow")
    return "\n".join(text)
