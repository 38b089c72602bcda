"""The promotion workflow: gate a challenger against the champion, move the alias, record who
and why.

Every move of `champion` goes through here (the CLI), so `model_promotions` never misses one.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field, replace
from enum import StrEnum

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


@dataclass(frozen=True)
class GateReport:
    """What the gate found, as far as it got: the figures of both versions on the challenger's
    test rows, the outcomes gate, and the verdict. The promotion's record and its refusal."""

    model: str
    challenger_version: str
    champion_version: str | None
    evaluated_on: str | None = None
    challenger_metrics: dict[str, float] | None = None
    champion_metrics: dict[str, float] | None = None
    outcomes: OutcomesGate | None = None
    gate: str | None = None

    def to_json(self) -> dict[str, object]:
        """The steps reached, in order; `champion_metrics` is null when there is no champion and
        absent when evaluating it failed."""
        shown: dict[str, object] = {
            "model": self.model,
            "challenger_version": self.challenger_version,
            "champion_version": self.champion_version,
        }
        if self.evaluated_on is not None:
            shown["evaluated_on"] = self.evaluated_on
        if self.challenger_metrics is not None:
            shown["challenger_metrics"] = self.challenger_metrics
            if self.champion_metrics is not None or self.champion_version is None:
                shown["champion_metrics"] = self.champion_metrics
        if self.outcomes is not None:
            shown["outcomes"] = self.outcomes.to_json()
        if self.gate is not None:
            shown["gate"] = self.gate
        return shown


class Change(StrEnum):
    PROMOTED = "promoted"
    UNCHANGED = "unchanged"  # the version asked for is the champion already
    ROLLED_BACK = "rolled back"


@dataclass(frozen=True)
class ChampionChange:
    """The outcome `retainwise model promote` / `rollback` prints."""

    model: str
    status: Change
    champion: str
    report: GateReport | None = None  # promoted: what the gate found
    forced: bool = False
    from_version: str | None = None  # rolled back: the champion it replaced

    def to_json(self) -> dict[str, object]:
        if self.report is not None:
            return {
                **self.report.to_json(),
                "status": self.status.value,
                "champion": self.champion,
                "forced": self.forced,
            }
        shown: dict[str, object] = {
            "model": self.model,
            "status": self.status.value,
            "champion": self.champion,
        }
        if self.status == Change.ROLLED_BACK:
            shown["from_version"] = self.from_version
        return shown


def promote_version(
    name: str,
    settings: Settings,
    engine,
    version: str | None = None,
    force: bool = False,
    reason: str | None = None,
    actor: str | None = None,
) -> ChampionChange:
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
        return ChampionChange(name, Change.UNCHANGED, version)
    report = _gate(GateReport(name, version, current), settings, engine, force)
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
        metrics=report.to_json(),
    )
    return ChampionChange(name, Change.PROMOTED, version, report, forced=force)


def _gate(report: GateReport, settings: Settings, engine, force: bool) -> GateReport:
    """The gate's verdict on the challenger; PromotionRefused (with the report so far) when it
    fails and `force` is off."""
    name, version, current = report.model, report.challenger_version, report.champion_version
    try:
        rows, labels = evaluation_set(name, version, settings)
        report = replace(
            report, evaluated_on=f"test split stored with version {version} ({len(labels)} rows)"
        )
        challenger = evaluate_version(name, version, rows, labels, settings)
        report = replace(report, challenger_metrics=challenger)
        champion = evaluate_version(name, current, rows, labels, settings) if current else None
        report = replace(report, champion_metrics=champion)
    except PromotionRefused as exc:
        if not force:
            raise PromotionRefused(str(exc), report.to_json()) from None
        return replace(report, gate=f"not evaluated: {exc}")
    problems = judge(challenger, champion).problems
    if current:
        outcomes = outcomes_gate(name, current, version, settings, engine)
        report = replace(report, outcomes=outcomes)
        problems = problems + outcomes.problems
    report = replace(report, gate="; ".join(problems) or "passed")
    if problems and not force:
        raise PromotionRefused(
            f"refused to promote {name} v{version}: {report.gate}", report.to_json()
        )
    return replace(report, gate="first champion") if current is None else report


def rollback(
    name: str, settings: Settings, engine, reason: str | None = None, actor: str | None = None
) -> ChampionChange:
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
    return ChampionChange(name, Change.ROLLED_BACK, previous, from_version=current)


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
    metrics: dict[str, object],
) -> None:
    """Alias then record (`metrics`: the JSON the record stores); if recording fails the alias
    goes back, so the record never misses one."""
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
