"""The model card: what a data scientist needs to trust (or distrust) a version, in markdown."""

from __future__ import annotations

from models.gate import MAX_AUC_DROP, MAX_BRIER_RISE
from models.thresholds import HIGH_RATE
from models.training import TrainedModel


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def model_card(trained: TrainedModel, name: str, source: str | None = None) -> str:
    p, m = trained.profile, trained.metrics
    excluded = [[col, why] for col, why in p.excluded.items()] or [["(none)", ""]]
    features = [[f.name, f.kind, f"{f.missing_share:.1%}"] for f in p.features]
    candidates = [
        [
            k,
            f"{v['cv_roc_auc']:.4f} ± {v['cv_roc_auc_std']:.4f}",
            "chosen" if k == trained.kind else "",
        ]
        for k, v in trained.candidates.items()
    ]
    rel = trained.curves.get("reliability", {})
    reliability = [
        [f"{a:.3f}", f"{b:.3f}"]
        for a, b in zip(rel.get("predicted", []), rel.get("observed", []), strict=True)
    ]
    return (
        "\n\n".join(
            [
                f"# Model card: {name} ({trained.kind})",
                f"Trained on `{source or 'a labeled table'}`: target `{p.target}`"
                + (f" (churn = `{p.positive}`)" if p.positive else "")
                + f", id column `{p.id_column or '(none: 1-based row number)'}`; "
                f"{int(m['rows_train'])} training rows, {int(m['rows_test'])} held-out test rows "
                f"(stratified, fixed seed), churn rate {m['churn_rate']:.1%}.",
                "## Held-out test figures\n\n"
                + _table(
                    ["metric", "value"],
                    [
                        ["ROC AUC", f"{m['roc_auc']:.4f}"],
                        ["PR AUC", f"{m['pr_auc']:.4f}"],
                        ["Brier score", f"{m['brier']:.4f}"],
                        ["lift in top decile", f"{m['lift_top_decile']:.2f}"],
                        ["recall at threshold", f"{m['recall_at_threshold']:.3f}"],
                        ["precision at threshold", f"{m['precision_at_threshold']:.3f}"],
                    ],
                ),
                "## Decision threshold and risk tiers\n\n"
                f"`predicted_churn` when probability >= **{p.threshold:.4f}** (maximises F1 on "
                f"out-of-fold validation probabilities of the training split). MEDIUM from the "
                f"threshold, HIGH from **{p.cutoffs.high:.4f}** (lowest validation probability "
                f"from which the observed churn rate reaches {HIGH_RATE:.0%}; top decile if none "
                "does).",
                "## Candidates (5-fold stratified cross-validation on the training split)\n\n"
                + _table(["model", "CV ROC AUC", ""], candidates)
                + "\n\nThe best is refit on the whole training split and calibrated by Platt "
                "scaling on its out-of-fold scores.",
                "## Calibration (held-out test set, equal-count bins)\n\n"
                + _table(["mean predicted", "observed churn rate"], reliability),
                "## Columns not used\n\n"
                + _table(["column", "why"], excluded)
                + "\n\nA column is excluded as leakage when alone it predicts the target with "
                "ROC AUC >= 0.98 on the training split or is a near copy of it; `--allow-column` "
                "keeps it.",
                "## Features\n\n" + _table(["column", "type", "missing"], features),
                "## Notes\n\n" + ("\n".join(f"- {n}" for n in trained.notes) or "- none"),
                "## Promotion gate\n\nA challenger replaces the champion only if, on the "
                f"challenger's stored test set, its ROC AUC is not lower by more than "
                f"{MAX_AUC_DROP} and its Brier score not worse by more than {MAX_BRIER_RISE} (or "
                "with `--force --reason`).",
            ]
        )
        + "\n"
    )
