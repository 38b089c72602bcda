"""The promotion workflow: gate a challenger against the champion, move the alias, record who
and why.

Every move of `champion` goes through here (the CLI), so `model_promotions` never misses one.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from typing import Any

from models.gate import judge
from retainwise.adapters import promotions
from retainwise.adapters.mlflow_registry import (
    CHALLENGER,
    CHAMPION,
    alias_version,
    champion_version,
    client,
    evaluation_set,
)
from retainwise.config.errors import PromotionRefused
from retainwise.config.settings import Settings
from retainwise.modelops.compare import VersionFigures, evaluate_version, outcomes_comparison


@dataclass(frozen=True)
class OutcomesGate:
    """The gate on production outcomes: used, or why not; its problems join the holdout gate's."""

    used: bool
    labelled_rows: int
    why: str | None = None
    challenger_metrics: VersionFigures | None = None
    champion_metrics: VersionFigures | None = None
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """As the promotion record and `model promote` show it (the problems are in `gate`)."""
        shown: dict[str, object] = {"used": self.used, "labelled_rows": self.labelled_rows}
        if self.why is not None:
            shown["why"] = self.why
        if self.challenger_metrics is not None and self.champion_metrics is not None:
            shown["challenger_metrics"] = self.challenger_metrics.to_json()
            shown["champion_metrics"] = self.champion_metrics.to_json()
        return shown


def outcomes_gate(
    name: str, champion: str, challenger: str, settings: Settings, engine
) -> OutcomesGate:
    """The gate on production outcomes both versions scored (one of them in shadow), used once
    there are settings.promotion_outcome_rows such rows; its problems say `on outcomes`."""
    import sqlalchemy as sa

    from retainwise.adapters import aws
    from retainwise.adapters.outcomes import outcomes

    needed = settings.promotion_outcome_rows
    if not sa.inspect(engine).has_table(outcomes.name):
        return OutcomesGate(False, 0, "no outcomes table")
    paired = outcomes_comparison(
        engine, aws.client("s3", settings), settings, name, [champion, challenger]
    ).paired
    rows, figures = paired.labelled_rows, paired.versions
    if rows < needed or any(figures[v].roc_auc is None for v in (champion, challenger)):
        return OutcomesGate(
            False,
            rows,
            f"{rows} labelled rows scored by both (the gate uses outcomes from {needed},"
            f" with both classes)",
        )
    challenger_figures, champion_figures = figures[challenger], figures[champion]
    decision = judge(_gated(challenger_figures), _gated(champion_figures))
    return OutcomesGate(
        True,
        rows,
        challenger_metrics=challenger_figures,
        champion_metrics=champion_figures,
        problems=[f"on outcomes: {problem}" for problem in decision.problems],
    )


def _gated(figures: VersionFigures) -> dict[str, float]:
    """The two figures the gate judges (both set: the outcomes gate is used with both classes)."""
    assert figures.roc_auc is not None
    return {"roc_auc": figures.roc_auc, "brier": figures.brier}


def current_actor() -> str:
    return os.environ.get("USER") or getpass.getuser() or "unknown"


def promote_version(
    name: str,
    settings: Settings,
    engine,
    version: str | None = None,
    force: bool = False,
    reason: str | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Gate a challenger against the champion on the challenger's test rows, move the alias, record.

    Raises PromotionRefused with both versions' figures when the gate fails and `force` is off.
    """
    promotions.require_table(engine)
    if force and not reason:
        raise ValueError("--force needs --reason saying why the gate is overridden")
    version = str(version or alias_version(name, CHALLENGER, settings) or "")
    if not version:
        raise PromotionRefused(f"{name!r} has no challenger; train one first", {"model": name})
    current = alias_version(name, CHAMPION, settings)
    if current == version:
        return {"model": name, "status": "unchanged", "champion": version}
    details: dict[str, Any] = {
        "model": name,
        "challenger_version": version,
        "champion_version": current,
    }
    try:
        rows, labels = evaluation_set(name, version, settings)
        details["evaluated_on"] = f"test split stored with version {version} ({len(labels)} rows)"
        details["challenger_metrics"] = evaluate_version(name, version, rows, labels, settings)
        details["champion_metrics"] = (
            evaluate_version(name, current, rows, labels, settings) if current else None
        )
    except PromotionRefused as exc:
        if not force:
            raise PromotionRefused(str(exc), details) from None
        details["gate"] = f"not evaluated: {exc}"
    else:
        problems = judge(details["challenger_metrics"], details["champion_metrics"]).problems
        if current:
            gate = outcomes_gate(name, current, version, settings, engine)
            details["outcomes"] = gate.to_json()
            problems = problems + gate.problems
        details["gate"] = "; ".join(problems) or "passed"
        if problems and not force:
            raise PromotionRefused(
                f"refused to promote {name} v{version}: {details['gate']}", details
            )
        if current is None:
            details["gate"] = "first champion"
    _move_champion(
        engine,
        name,
        current,
        version,
        action=promotions.PROMOTE,
        settings=settings,
        actor=actor or current_actor(),
        reason=reason,
        forced=force,
        metrics=details,
    )
    return {**details, "status": "promoted", "champion": version, "forced": force}


def rollback(
    name: str, settings: Settings, engine, reason: str | None = None, actor: str | None = None
) -> dict[str, Any]:
    """Undo the promotion that made the current champion: the version it replaced is back."""
    promotions.require_table(engine)
    current = champion_version(name, settings)
    previous = promotions.rollback_target(engine, name, current)
    if previous is None:
        raise PromotionRefused(
            f"no earlier champion of {name!r} to return to (the promotion "
            f"history has none before version {current})",
            {"model": name, "champion_version": current},
        )
    _move_champion(
        engine,
        name,
        current,
        previous,
        action=promotions.ROLLBACK,
        settings=settings,
        actor=actor or current_actor(),
        reason=reason,
        forced=False,
        metrics={},
    )
    return {"model": name, "status": "rolled back", "champion": previous, "from_version": current}


def _move_champion(
    engine,
    name: str,
    current: str | None,
    version: str,
    *,
    action: str,
    settings: Settings,
    actor: str,
    reason: str | None,
    forced: bool,
    metrics: dict[str, Any],
) -> None:
    """Alias then record; if recording fails the alias goes back, so the record never misses one."""
    mlflow_client = client(settings)
    mlflow_client.set_registered_model_alias(name, CHAMPION, str(version))
    try:
        promotions.record(
            engine,
            model_name=name,
            action=action,
            from_version=current,
            to_version=str(version),
            actor=actor,
            reason=reason,
            forced=forced,
            metrics=metrics,
        )
    except Exception:
        if current is None:
            mlflow_client.delete_registered_model_alias(name, CHAMPION)
        else:
            mlflow_client.set_registered_model_alias(name, CHAMPION, current)
        raise
