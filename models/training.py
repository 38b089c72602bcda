"""Train a churn classifier on a labeled table. Pure scikit-learn: frames in, fitted model out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from models.features import infer_features, prepare_features
from models.profile import ModelProfile

SEED = 42
TRUE_LABELS = {"yes", "true", "1", "y", "t", "churn", "churned"}


class TrainingError(ValueError):
    """The table cannot train a model; the message says why in the data scientist's terms."""


@dataclass
class TrainedModel:
    pipeline: Pipeline
    profile: ModelProfile
    metrics: dict[str, float]
    notes: list[str] = field(default_factory=list)
    holdout: pd.DataFrame | None = None


def encode_target(values: pd.Series, positive: str | None = None) -> pd.Series:
    """Map a label column to 0/1: Yes/No, True/False, 1/0, or `positive` for text labels."""
    text = values.astype("string").str.strip()
    if text.isna().any():
        raise TrainingError(f"target column {values.name!r} has {int(text.isna().sum())} empty values")
    if positive is not None:
        return (text == str(positive)).astype(int)
    labels = set(text.str.lower().unique())
    if len(labels) != 2:
        raise TrainingError(f"target column {values.name!r} must have two values, found {sorted(labels)}")
    if not labels & TRUE_LABELS:
        raise TrainingError(f"cannot tell which of {sorted(labels)} means churn; pass --positive")
    return text.str.lower().isin(TRUE_LABELS).astype(int)


def build_pipeline(profile: ModelProfile) -> Pipeline:
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline([
        ("impute", SimpleImputer(strategy="constant", fill_value="(missing)")),
        ("onehot", OneHotEncoder(handle_unknown="ignore")),
    ])
    columns = ColumnTransformer([("numeric", numeric, profile.numeric),
                                 ("categorical", categorical, profile.categorical)])
    return Pipeline([("columns", columns),
                     ("classifier", LogisticRegression(C=1.0, max_iter=2000))])


def train(frame: pd.DataFrame, target: str, id_column: str | None = None,
          positive: str | None = None) -> TrainedModel:
    """Fit on a stratified 80% split and report ROC AUC on the untouched 20%."""
    for column in [target] + ([id_column] if id_column else []):
        if column not in frame.columns:
            raise TrainingError(f"column {column!r} is not in the table")
    y = encode_target(frame[target], positive)
    features, notes = infer_features(frame, exclude={target, id_column} - {None})
    if not features:
        raise TrainingError("no usable feature columns")
    profile = ModelProfile(id_column=id_column, target=target, features=features)
    X = prepare_features(frame, features)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=SEED)
    pipeline = build_pipeline(profile).fit(X_train, y_train)
    probabilities = pipeline.predict_proba(X_test)[:, 1]
    metrics = {"roc_auc": float(roc_auc_score(y_test, probabilities)),
               "rows_train": float(len(X_train)), "rows_test": float(len(X_test)),
               "churn_rate": float(np.mean(y))}
    holdout = X_test.assign(**{target: y_test.to_numpy()})
    return TrainedModel(pipeline, profile, metrics, notes, holdout)
