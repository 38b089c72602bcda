"""The boosted trees compiled to a C shared library, for prediction only.

treelite imports the fitted trees (LightGBM, or scikit-learn's HistGradientBoosting of versions
trained before it; scikit-learn predicts those tree by tree from Python, ~19 ms per tree on 400k
rows) and tl2cgen emits them as C, which gcc builds into a library that predicts all trees per row
in one call (~4x less CPU, same numbers).
Compiling needs a C compiler, so it happens when a model is registered; scoring only loads the
library. Pure: files in, files out; the registry adapter decides where the library is stored.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

LIBRARY = "trees.so"
TOLERANCE = 1e-6  # compiled probabilities must equal the model's own to this


def boosted_parts(model: Any) -> tuple[Any, Any] | None:
    """(column transformer, booster) of a calibrated boosted pipeline, or None."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from models.boosting import ChurnBooster

    pipeline: Any = getattr(model, "base", None)
    steps = getattr(pipeline, "steps", None)
    if not steps or not isinstance(steps[-1][1], ChurnBooster | HistGradientBoostingClassifier):
        return None
    return pipeline[:-1], steps[-1][1]


def import_trees(booster: Any) -> Any:
    """The booster's trees as a treelite model."""
    import treelite

    from models.boosting import ChurnBooster

    if isinstance(booster, ChurnBooster):
        return treelite.frontend.from_lightgbm(booster.booster_)
    return treelite.sklearn.import_model(booster)


def compile_trees(model: Any, directory: Path, check_rows: Any) -> Path | None:
    """Build `directory/trees.so` for a calibrated boosted model and prove it on `check_rows`.

    Returns None for models without boosted trees. Raises if the compiled probabilities differ
    from the model's own by more than TOLERANCE, so a wrong library is never stored.
    """
    import tl2cgen

    parts = boosted_parts(model)
    if parts is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    library = directory / LIBRARY
    tl2cgen.export_lib(
        import_trees(parts[1]),
        toolchain="gcc",
        libpath=library,
        params={"parallel_comp": 8},
        nthread=1,
    )
    expected = model.predict_proba(check_rows)[:, 1]
    got = CompiledModel(model, library).predict_proba(check_rows)[:, 1]
    difference = float(np.max(np.abs(expected - got))) if len(got) else 0.0
    if difference > TOLERANCE:
        raise ValueError(f"compiled trees differ from the model by {difference:.2e}")
    return library


class CompiledModel:
    """predict_proba of a calibrated boosted pipeline, with the trees run by the compiled library.

    The column transform (category codes) and the calibration stay the pipeline's own; only the
    trees' raw score comes from C. `sklearn` is the original model (explanations use it).
    """

    def __init__(self, model: Any, library: Path, threads: int | None = None) -> None:
        import tl2cgen

        parts = boosted_parts(model)
        if parts is None:
            raise ValueError("only a calibrated boosted-trees pipeline can be compiled")
        self.sklearn = model
        self.columns = parts[0]
        self.library = Path(library)
        self.threads = threads or max(1, min(2, os.cpu_count() or 1))
        self.predictor = tl2cgen.Predictor(str(library), nthread=self.threads)
        self.lock = threading.Lock()  # tl2cgen: "may be called by only one thread at a time"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as the model and the library's path (a helper process on this machine loads
        the library again; the predictor and its lock cannot be pickled)."""
        return (CompiledModel, (self.sklearn, self.library, self.threads))

    @property
    def classes_(self) -> np.ndarray:
        classes: np.ndarray = self.sklearn.classes_
        return classes

    def encode(self, X: npt.ArrayLike) -> np.ndarray:
        """The rows as the trees read them (numbers, then category codes)."""
        return np.ascontiguousarray(self.columns.transform(X), dtype=np.float64)

    def decision_function(self, X: npt.ArrayLike) -> np.ndarray:
        return self.margin(self.encode(X))

    def margin(self, encoded: np.ndarray) -> np.ndarray:
        """The trees' raw score of rows already encoded (`encode`)."""
        import tl2cgen

        matrix = tl2cgen.DMatrix(encoded, missing=np.nan)
        with self.lock:
            margin = self.predictor.predict(matrix, pred_margin=True)
        return np.asarray(margin, dtype=np.float64).reshape(len(encoded))

    def predict_proba(self, X: npt.ArrayLike) -> np.ndarray:
        return self.probabilities(self.margin(self.encode(X)))

    def probabilities(self, margin: np.ndarray) -> np.ndarray:
        churn = self.sklearn.predict_proba_from_scores(margin)
        return np.column_stack([1 - churn, churn])


class Remembering:
    """A scorer (compiled or not) that keeps the last prepared rows it scored and, for compiled
    trees, their encoded matrix: what the actions list reuses to explain some of those rows
    instead of preparing and encoding them again. One per chunk (not shared by threads)."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer
        self.sklearn = getattr(scorer, "sklearn", scorer)  # what explanations use
        self.features: pd.DataFrame | None = None
        self.encoded: np.ndarray | None = None

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        self.features = features
        if not isinstance(self.scorer, CompiledModel):
            churn: np.ndarray = self.scorer.predict_proba(features)
            return churn
        self.encoded = self.scorer.encode(features)
        return self.scorer.probabilities(self.scorer.margin(self.encoded))
