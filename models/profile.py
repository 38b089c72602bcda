"""What a model version knows about its inputs: the contract validation and scoring rely on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

LABEL_COLUMN = "__retainwise_label__"  # the 0/1 label stored beside the raw rows of the test set


@dataclass(frozen=True)
class FeatureProfile:
    """One input column as seen on the training split.

    Numeric features carry `bin_edges` (ascending, outer bins open-ended) and `bin_shares` (one
    share per bin plus a last share for missing values); categorical ones carry `category_shares`
    (share of all training rows per category; the missing rows' share is `missing_share`).
    `models.features.bin_shares` bins new data the same way, for drift (PSI) checks.
    """

    name: str
    kind: str  # "numeric" or "categorical"
    minimum: float | None = None
    maximum: float | None = None
    categories: list[str] = field(default_factory=list)
    missing_share: float = 0.0
    bin_edges: list[float] = field(default_factory=list)
    bin_shares: list[float] = field(default_factory=list)
    category_shares: dict[str, float] = field(default_factory=dict)
    median: float | None = None  # the typical value a tree explanation compares against

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureProfile:
        """Unknown keys are ignored and missing ones defaulted, so older versions still load."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class RiskCutoffs:
    """A probability at or above `high` is HIGH, at or above `medium` is MEDIUM, else LOW."""

    high: float = 0.6
    medium: float = 0.3


@dataclass(frozen=True)
class ModelProfile:
    id_column: str | None
    target: str
    features: list[FeatureProfile]
    threshold: float = 0.5
    cutoffs: RiskCutoffs = field(default_factory=RiskCutoffs)
    positive: str | None = None
    excluded: dict[str, str] = field(default_factory=dict)  # column -> why it is not a feature
    # other header spellings customers use for a column -> the feature (or id) name
    aliases: dict[str, str] = field(default_factory=dict)
    # share of validation (out-of-fold) probabilities per tenth of [0, 1]: the score distribution
    # an upload's scores are compared with (score PSI); empty for versions trained before it
    score_shares: list[float] = field(default_factory=list)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelProfile:
        """Tolerant of keys older versions did not write (and of keys newer ones may add)."""
        return cls(
            id_column=data.get("id_column"),
            target=data.get("target", ""),
            features=[FeatureProfile.from_dict(f) for f in data.get("features", [])],
            threshold=float(data.get("threshold", 0.5)),
            cutoffs=RiskCutoffs(**(data.get("cutoffs") or {})),
            positive=data.get("positive"),
            excluded=dict(data.get("excluded") or {}),
            aliases=dict(data.get("aliases") or {}),
            score_shares=[float(v) for v in data.get("score_shares") or []],
        )
