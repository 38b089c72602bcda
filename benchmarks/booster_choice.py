"""Why the boosted candidate is LightGBM (issue 19): the three ways to get exact contributions.

`python benchmarks/booster_choice.py` trains, on the Telco training split with the training
module's folds and Platt calibration, (a) scikit-learn's HistGradientBoosting with native category
splits (the model before), (b) the same with categories as ordinal numbers, (c) LightGBM with
native category splits (models.boosting), and prints per model one JSON line: CV + refit seconds,
holdout ROC AUC and Brier score, mean probability against the churn rate, predict_proba seconds
on 400k rows, and contributions' worst |base + sum - margin| with microseconds per row (wall and
CPU): shap's TreeExplainer for (a) and (b) (only when shap is installed: it is not a dependency),
LightGBM's pred_contrib for (c).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EXPLAINED_ROWS = 20_000


def timed(action):
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def hgb_builder(native: bool):
    from sklearn.ensemble import HistGradientBoostingClassifier

    from models import training

    def build(profile):
        pipeline = training.build_boosted(profile)
        mask = [False] * len(profile.numeric) + [True] * len(profile.categorical)
        booster = HistGradientBoostingClassifier(
            categorical_features=mask if native else None,
            learning_rate=0.05,
            max_iter=200,
            max_leaf_nodes=8,
            min_samples_leaf=40,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=training.SEED,
        )
        pipeline.steps[-1] = ("classifier", booster)
        return pipeline

    return build


def contributions(pipeline, X) -> tuple[np.ndarray, np.ndarray] | None:
    """(base + contributions per row, margin per row), or None without shap for scikit-learn."""
    from models.boosting import ChurnBooster

    encoded, booster = pipeline[:-1].transform(X), pipeline.steps[-1][1]
    if isinstance(booster, ChurnBooster):
        return booster.contributions(encoded).sum(axis=1), booster.decision_function(encoded)
    try:
        import shap
    except ImportError:
        return None
    explainer = shap.TreeExplainer(booster)
    values = explainer.shap_values(encoded)
    return values.sum(axis=1) + explainer.expected_value, pipeline.decision_function(X)


def measure(name, build, split) -> dict:
    from sklearn.metrics import brier_score_loss, roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    from models import training
    from models.calibration import CalibratedModel, fit_platt

    profile, X_train, y_train, X_test, y_test, big = split
    folds = list(
        StratifiedKFold(5, shuffle=True, random_state=training.SEED).split(X_train, y_train)
    )

    def fit():
        with threadpool_limits(limits=1, user_api="openmp"):
            oof, _ = training.out_of_fold_scores(build, profile, X_train, y_train, folds)
            return oof, build(profile).fit(X_train, y_train)

    (oof, base), fit_wall, _ = timed(fit)
    model = CalibratedModel(base, *fit_platt(oof, y_train))
    p = model.predict_proba(X_test)[:, 1]
    _, predict_wall, predict_cpu = timed(lambda: model.predict_proba(big))
    rows = big.head(EXPLAINED_ROWS)
    found, explain_wall, explain_cpu = timed(lambda: contributions(base, rows))
    figure = {
        "model": name,
        "cv_and_fit_seconds": round(fit_wall, 2),
        "holdout_roc_auc": round(float(roc_auc_score(y_test, p)), 4),
        "holdout_brier": round(float(brier_score_loss(y_test, p)), 4),
        "mean_probability": round(float(p.mean()), 4),
        "churn_rate": round(float(y_test.mean()), 4),
        "predict_400k_wall": round(predict_wall, 2),
        "predict_400k_cpu": round(predict_cpu, 2),
    }
    if found is not None:
        figure["contribution_error_max"] = float(np.max(np.abs(found[0] - found[1])))
        figure["contributions_us_per_row_wall"] = round(explain_wall / len(rows) * 1e6, 1)
        figure["contributions_us_per_row_cpu"] = round(explain_cpu / len(rows) * 1e6, 1)
    return figure


def telco_split():
    from benchmarks.data import ID, TARGET, load_telco
    from models import training
    from models.features import prepare_features
    from models.profile import ModelProfile

    frame = load_telco()
    y_all = training.encode_target(frame[TARGET])
    train_rows, test_rows, y_train, y_test = training.split(frame, y_all)
    features, _, _ = training.select_features(train_rows, y_train.to_numpy(), TARGET, ID, [])
    profile = ModelProfile(id_column=ID, target=TARGET, features=features)
    big = frame.sample(400_000, replace=True, random_state=1)
    return (
        profile,
        prepare_features(train_rows, features),
        y_train.to_numpy(),
        prepare_features(test_rows, features),
        y_test.to_numpy(),
        prepare_features(big, features),
    )


def main() -> None:
    from models import training

    split = telco_split()
    candidates = {
        "histgradientboosting_native_categories": hgb_builder(native=True),
        "histgradientboosting_ordinal_categories": hgb_builder(native=False),
        "lightgbm_native_categories": training.build_boosted,
    }
    for name, build in candidates.items():
        print(json.dumps(measure(name, build, split)), flush=True)


if __name__ == "__main__":
    main()
