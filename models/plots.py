"""ROC and reliability plots as matplotlib Figures (no pyplot, so no global backend state)."""

from __future__ import annotations

from matplotlib.figure import Figure


def roc_figure(roc: dict[str, list[float]], auc: float) -> Figure:
    figure = Figure(figsize=(4.5, 4.5))
    axes = figure.subplots()
    axes.plot(roc["fpr"], roc["tpr"], label=f"model (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, held-out test")
    axes.legend(loc="lower right")
    return figure


def calibration_figure(reliability: dict[str, list[float]], brier: float) -> Figure:
    figure = Figure(figsize=(4.5, 4.5))
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    axes.plot(
        reliability["predicted"],
        reliability["observed"],
        marker="o",
        label=f"model (Brier {brier:.3f})",
    )
    axes.set(
        xlabel="mean predicted probability",
        ylabel="observed churn rate",
        title="Reliability, held-out test",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    axes.legend(loc="upper left")
    return figure
