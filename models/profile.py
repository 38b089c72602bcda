"""What a model version knows about its inputs: the contract validation and scoring rely on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class FeatureProfile:
    name: str
    kind: str  # "numeric" or "categorical"
    minimum: float | None = None
    maximum: float | None = None
    categories: list[str] = field(default_factory=list)
    missing_share: float = 0.0
    # training distribution for drift (PSI): numeric decile edges and the share of rows per bin,
    # the last share being missing values; categorical shares per category
    bin_edges: list[float] = field(default_factory=list)
    bin_shares: list[float] = field(default_factory=list)
    category_shares: dict[str, float] = field(default_factory=dict)


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
    # other header spellings customers use for a column -> the feature (or id) name
    aliases: dict[str, str] = field(default_factory=dict)

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
    def from_dict(cls, data: dict[str, Any]) -> "ModelProfile":
        return cls(
            id_column=data["id_column"], target=data["target"],
            features=[FeatureProfile(**f) for f in data["features"]],
            threshold=float(data.get("threshold", 0.5)),
            cutoffs=RiskCutoffs(**data.get("cutoffs", {})),
            aliases=dict(data.get("aliases") or {}),
        )
