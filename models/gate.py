"""The promotion gate: may a challenger replace the champion, judged on the same labeled rows?"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_AUC_DROP = 0.005  # challenger ROC AUC may be at most this much lower than the champion's
MAX_BRIER_RISE = 0.005  # challenger Brier score may be at most this much higher (worse)


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    problems: list[str] = field(default_factory=list)


def judge(challenger: dict[str, float], champion: dict[str, float] | None) -> GateDecision:
    """Pass unless the challenger is clearly worse; there is nothing to beat without a champion."""
    if champion is None:
        return GateDecision(True)
    problems = []
    auc_drop = champion["roc_auc"] - challenger["roc_auc"]
    if auc_drop > MAX_AUC_DROP:
        problems.append(
            f"ROC AUC {challenger['roc_auc']:.4f} is {auc_drop:.4f} below the "
            f"champion's {champion['roc_auc']:.4f} (allowed {MAX_AUC_DROP})"
        )
    brier_rise = challenger["brier"] - champion["brier"]
    if brier_rise > MAX_BRIER_RISE:
        problems.append(
            f"Brier score {challenger['brier']:.4f} is {brier_rise:.4f} worse than the "
            f"champion's {champion['brier']:.4f} (allowed {MAX_BRIER_RISE})"
        )
    return GateDecision(not problems, problems)
