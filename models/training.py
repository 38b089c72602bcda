"""Train a churn classifier on a labeled table. Pure scikit-learn: frames in, fitted model out.

Steps: encode the label, split off a stratified test set (fixed seed), type and profile the columns
on the training split, exclude leaking columns, compare candidates by stratified cross-validation,
refit the best, calibrate it on its out-of-fold scores, choose threshold and tiers on those
out-of-fold probabilities, and report on the untouched test set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from models.boosting import ChurnBooster, booster_params
from models.calibration import CalibratedModel, fit_platt
from models.encoding import CategoryEncoder
from models.evaluation import holdout_metrics, reliability_curve, roc_points
from models.features import infer_features, prepare_features
from models.leakage import leaking_columns
from models.monitoring import score_shares
from models.profile import LABEL_COLUMN, FeatureProfile, ModelProfile
from models.thresholds import choose_threshold_and_cutoffs

SEED = 42
TEST_SHARE = 0.2
CV_FOLDS = 5
MIN_PER_CLASS = 10
TRUE_LABELS = {"yes", "true", "1", "y", "t", "churn", "churned"}
MAX_CATEGORIES = 250  # category codes beyond this share one "infrequent" code

LINEAR_PARAMS = {"C": 1.0, "max_iter": 2000}
BOOSTED_PARAMS = booster_params([], SEED)
UNLOGGED = {"random_state", "verbose", "n_jobs"}


class Curves(TypedDict):
    """ROC and reliability points on the test set (evaluation/curves.json in the run)."""

    roc: dict[str, list[float]]  # fpr, tpr
    reliability: dict[str, list[float]]  # predicted, observed


class TrainingError(ValueError):
    """The table cannot train a model; the message says why in the data scientist's terms."""


@dataclass
class TrainedModel:
    pipeline: Any  # CalibratedModel: predict_proba on prepare_features output
    profile: ModelProfile
    metrics: dict[str, float]
    notes: list[str] = field(default_factory=list)  # dropped columns, warnings
    evaluation: pd.DataFrame | None = None  # raw test rows + LABEL_COLUMN
    kind: str = "logistic_regression"
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)  # MLflow run params: text, as stored
    curves: Curves = field(default_factory=lambda: Curves(roc={}, reliability={}))

    @property
    def excluded(self) -> dict[str, str]:
        return self.profile.excluded

    @property
    def scorer(self) -> Any:
        """What scoring calls predict_proba on (models.scoring.ScoringModel): the pipeline."""
        return self.pipeline


def encode_target(values: pd.Series, positive: str | None = None) -> pd.Series:
    """Map a label column to 0/1: Yes/No, True/False, 1/0, or `positive` for text labels."""
    text = values.astype("string").str.strip()
    if text.isna().any() or (text == "").any():
        empty = int((text.isna() | (text == "")).sum())
        raise TrainingError(f"target column {values.name!r} has {empty} empty values")
    if positive is not None:
        if not (text == str(positive)).any():
            raise TrainingError(
                f"--positive {positive!r} does not occur in {values.name!r}; "
                f"values are {sorted(text.unique())[:10]}"
            )
        return (text == str(positive)).astype(int)
    labels = set(text.str.lower().unique())
    if len(labels) != 2:
        raise TrainingError(
            f"target column {values.name!r} must have two values, found "
            f"{sorted(labels)[:10]}; pass --positive VALUE to name the churn label"
        )
    if len(labels & TRUE_LABELS) != 1:
        raise TrainingError(f"cannot tell which of {sorted(labels)} means churn; pass --positive")
    return text.str.lower().isin(TRUE_LABELS).astype(int)


def build_linear(profile: ModelProfile) -> Pipeline:
    """L2-regularised logistic regression on standardised numbers and one-hot categories."""
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    columns = ColumnTransformer(
        [
            ("numeric", numeric, profile.numeric),
            ("categorical", CategoryEncoder("onehot"), profile.categorical),
        ]
    )
    return Pipeline([("columns", columns), ("classifier", LogisticRegression(**LINEAR_PARAMS))])


def build_boosted(profile: ModelProfile) -> Pipeline:
    """LightGBM trees with native categorical splits (unknown categories -> missing)."""
    categorical = CategoryEncoder("ordinal", max_categories=MAX_CATEGORIES)
    columns = ColumnTransformer(
        [
            ("numeric", "passthrough", profile.numeric),
            ("categorical", categorical, profile.categorical),
        ]
    )
    positions = list(range(len(profile.numeric), len(profile.features)))
    booster = ChurnBooster(**booster_params(positions, SEED))
    return Pipeline([("columns", columns), ("classifier", booster)])


CANDIDATES: dict[str, Callable[[ModelProfile], Pipeline]] = {
    "logistic_regression": build_linear,
    "gradient_boosting": build_boosted,
}


def out_of_fold_scores(
    build: Callable[[ModelProfile], Any],
    profile: ModelProfile,
    X: pd.DataFrame,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, list[float]]:
    """Decision scores for every training row from a model that did not see it, and fold AUCs."""
    scores, aucs = np.zeros(len(y)), []
    for fit, held in folds:
        model = build(profile).fit(X.iloc[fit], y[fit])
        scores[held] = model.decision_function(X.iloc[held])
        aucs.append(float(roc_auc_score(y[held], scores[held])))
    return scores, aucs


def pick_best(candidates: dict[str, dict[str, float]]) -> str:
    """Highest mean CV ROC AUC; on a tie the first listed (the simpler, linear model) wins."""
    return max(
        candidates,
        key=lambda name: (round(candidates[name]["cv_roc_auc"], 6), -list(candidates).index(name)),
    )


def check_columns(
    frame: pd.DataFrame, target: str, id_column: str | None, allow_columns: Collection[str]
) -> None:
    for column in [target] + ([id_column] if id_column else []) + list(allow_columns):
        if column not in frame.columns:
            raise TrainingError(
                f"column {column!r} is not in the table; columns are "
                f"{', '.join(map(str, frame.columns))}"
            )


def split(
    frame: pd.DataFrame, y: pd.Series
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    counts = y.value_counts()
    if len(counts) < 2 or counts.min() < MIN_PER_CLASS:
        raise TrainingError(
            f"need at least {MIN_PER_CLASS} rows of each label to train and test; "
            f"found {counts.to_dict()}"
        )
    train_rows, test_rows, y_train, y_test = train_test_split(
        frame, y, test_size=TEST_SHARE, stratify=y, random_state=SEED
    )
    return train_rows, test_rows, y_train, y_test


def select_features(
    rows: pd.DataFrame,
    y: np.ndarray,
    target: str,
    id_column: str | None,
    allow_columns: Collection[str],
) -> tuple[list[FeatureProfile], dict[str, str], list[str]]:
    """Typed features of the training split minus useless and leaking columns, with the why."""
    features, notes = infer_features(
        rows, exclude={target} | ({id_column} if id_column is not None else set())
    )
    kept = {f.name for f in features}
    excluded = {
        str(column): note[len(str(column)) + 2 :]
        for column in rows.columns
        if column not in kept
        for note in notes
        if note.startswith(f"{column}: ")
    }
    for name, reason in leaking_columns(prepare_features(rows, features), y, features).items():
        if name in allow_columns:
            notes.append(f"{name}: kept by --allow-column despite {reason}")
        else:
            excluded[name] = reason
            notes.append(f"{name}: excluded, {reason}; keep it with --allow-column {name!r}")
    features = [f for f in features if f.name not in excluded]
    if not features:
        raise TrainingError("no usable feature columns: " + "; ".join(notes))
    return features, excluded, notes


def compare_candidates(
    profile: ModelProfile, X: pd.DataFrame, y: np.ndarray
) -> tuple[dict[str, dict[str, float]], np.ndarray, str, Any]:
    """CV every candidate on the same folds and refit the best.

    Returns the CV figures, the best one's out-of-fold scores, its name and the refit pipeline.
    """
    folds = list(StratifiedKFold(CV_FOLDS, shuffle=True, random_state=SEED).split(X, y))
    candidates, scores = {}, {}
    with threadpool_limits(limits=1, user_api="openmp"):  # OpenMP spin-waits on a busy 2-core box
        for name, build in CANDIDATES.items():
            scores[name], aucs = out_of_fold_scores(build, profile, X, y, folds)
            candidates[name] = {
                "cv_roc_auc": float(np.mean(aucs)),
                "cv_roc_auc_std": float(np.std(aucs)),
            }
        kind = pick_best(candidates)
        return candidates, scores[kind], kind, CANDIDATES[kind](profile).fit(X, y)


def run_params(kind: str) -> dict[str, str]:
    """How the run trained, as MLflow stores params (the text of each value)."""
    params = {
        "model_kind": kind,
        "seed": SEED,
        "test_share": TEST_SHARE,
        "cv_folds": CV_FOLDS,
        "calibration": "platt (sigmoid) on out-of-fold scores",
        **{f"linear_{k}": v for k, v in LINEAR_PARAMS.items()},
        "boosted_library": "lightgbm",
        **{f"boosted_{k}": v for k, v in BOOSTED_PARAMS.items() if k not in UNLOGGED},
    }
    return {key: str(value) for key, value in params.items()}


def train(
    frame: pd.DataFrame,
    target: str,
    id_column: str | None = None,
    positive: str | None = None,
    allow_columns: Collection[str] = (),
) -> TrainedModel:
    """Fit, calibrate and evaluate; see the module docstring for the steps."""
    started = time.perf_counter()
    check_columns(frame, target, id_column, allow_columns)
    y_all = encode_target(frame[target], positive)
    train_rows, test_rows, y_train, y_test = split(frame, y_all)
    y_train, y_test = y_train.to_numpy(), y_test.to_numpy()
    features, excluded, notes = select_features(
        train_rows, y_train, target, id_column, allow_columns
    )
    if not id_column:
        notes.insert(0, "no --id given: results will use the 1-based row number as customer_id")
    profile = ModelProfile(
        id_column=id_column, target=target, features=features, positive=positive, excluded=excluded
    )
    X_train = prepare_features(train_rows, features)
    candidates, oof_scores, kind, base = compare_candidates(profile, X_train, y_train)
    model = CalibratedModel(base, *fit_platt(oof_scores, y_train))
    oof_p = model.predict_proba_from_scores(oof_scores)
    threshold, cutoffs = choose_threshold_and_cutoffs(y_train, oof_p)
    profile = replace(
        profile, threshold=threshold, cutoffs=cutoffs, score_shares=score_shares(oof_p).tolist()
    )
    test_p = model.predict_proba(prepare_features(test_rows, features))[:, 1]
    metrics = holdout_metrics(y_test, test_p, threshold)
    metrics.update(
        {f"cv_roc_auc_{name}": c["cv_roc_auc"] for name, c in candidates.items()},
        rows_train=float(len(y_train)),
        rows_test=float(len(y_test)),
        churn_rate=float(np.mean(y_all)),
        n_features=float(len(features)),
        train_seconds=time.perf_counter() - started,
    )
    curves = Curves(roc=roc_points(y_test, test_p), reliability=reliability_curve(y_test, test_p))
    return TrainedModel(
        model,
        profile,
        metrics,
        notes,
        test_rows.assign(**{LABEL_COLUMN: y_test}),
        kind,
        candidates,
        run_params(kind),
        curves,
    )
