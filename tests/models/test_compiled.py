"""The compiled trees give scikit-learn's probabilities (to 1e-6) on Telco and on benchmark data."""

import numpy as np
import pandas as pd
import pytest

from benchmarks.data import ID, jittered_block, load_telco
from models.compiled import TOLERANCE, CompiledModel, Remembering, compile_trees
from models.explain import EncodedRows, explain
from models.features import prepare_features
from models.scoring import score_frame
from models.training import LABEL_COLUMN, build_linear


@pytest.fixture(scope="module")
def telco_model(tmp_path_factory, telco_trained):
    frame, trained = telco_trained
    assert trained.kind == "gradient_boosting"  # what Telco picks; the rest of the module needs it
    check = prepare_features(
        trained.evaluation.drop(columns=[LABEL_COLUMN]), trained.profile.features
    )
    library = compile_trees(trained.pipeline, tmp_path_factory.mktemp("compiled"), check)
    return frame, trained, CompiledModel(trained.pipeline, library)


def scored_both_ways(trained, compiled, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = frame[ID]
    return (
        score_frame(trained.pipeline, trained.profile, frame, ids),
        score_frame(compiled, trained.profile, frame, ids),
    )


def test_scoring_with_compiled_trees_matches_scikit_learn_on_the_telco_file(telco_model):
    frame, trained, compiled = telco_model
    expected, got = scored_both_ways(trained, compiled, frame)
    assert np.max(np.abs(expected["churn_probability"] - got["churn_probability"])) <= TOLERANCE
    pd.testing.assert_frame_equal(
        expected.drop(columns="churn_probability"), got.drop(columns="churn_probability")
    )


def test_scoring_with_compiled_trees_matches_scikit_learn_on_benchmark_data(telco_model):
    _, trained, compiled = telco_model
    rows = jittered_block(load_telco(), 0, 30_000, np.random.default_rng(2024))
    rows.loc[rows.index[:50], "Contract"] = "Two-year plus"  # unseen category: missing branch
    rows.loc[rows.index[50:100], "MonthlyCharges"] = ""  # missing number
    expected, got = scored_both_ways(trained, compiled, rows)
    assert np.max(np.abs(expected["churn_probability"] - got["churn_probability"])) <= TOLERANCE
    assert (expected["predicted_churn"] == got["predicted_churn"]).all()


def test_reasons_still_come_from_the_scikit_learn_model(telco_model):
    frame, trained, compiled = telco_model
    head = frame.head(200)
    expected = score_frame(trained.pipeline, trained.profile, head, head[ID], reasons=True)
    got = score_frame(compiled, trained.profile, head, head[ID], reasons=True)
    assert (expected["top_reasons"] == got["top_reasons"]).all()


def test_the_rows_a_remembering_scorer_encoded_explain_as_encoding_them_again(telco_model):
    """The actions list reuses the compiled scorer's encoded chunk: the same probabilities, and
    the same contributions to the bit for any rows taken from it by index."""
    frame, trained, compiled = telco_model
    rows = frame.head(300).set_axis(pd.RangeIndex(300, 600))
    remembering = Remembering(compiled)
    got = score_frame(remembering, trained.profile, rows, rows[ID])
    pd.testing.assert_frame_equal(got, score_frame(compiled, trained.profile, rows, rows[ID]))
    assert remembering.features is not None and remembering.encoded is not None
    encoded = EncodedRows(remembering.features.index, remembering.encoded)
    X = remembering.features.iloc[[250, 3, 77, 4]]
    reused = explain(compiled, trained.profile, X, encoded.of(X))
    again = explain(compiled, trained.profile, X)
    assert np.array_equal(reused.contributions, again.contributions)
    assert np.array_equal(reused.base, again.base)
    assert encoded.of(X.set_axis([0, 1, 2, 3])) is None  # rows it never encoded: none taken


def test_a_model_without_boosted_trees_is_not_compiled(telco_model, tmp_path):
    frame, trained, _ = telco_model
    X = prepare_features(frame.head(500), trained.profile.features)
    linear = build_linear(trained.profile).fit(X, (frame["Churn"].head(500) == "Yes").astype(int))
    assert compile_trees(linear, tmp_path, X) is None
    with pytest.raises(ValueError, match="only a calibrated boosted-trees"):
        CompiledModel(linear, tmp_path / "trees.so")


def test_compiled_trees_pickle_as_the_model_and_the_library_path(telco_model):
    """How a scoring helper process gets them (uploads/halves.py)."""
    import pickle

    frame, trained, compiled = telco_model
    copy = pickle.loads(pickle.dumps(compiled))
    assert copy.library == compiled.library and copy.threads == compiled.threads
    features = prepare_features(frame.head(500), trained.profile.features)
    np.testing.assert_array_equal(copy.predict_proba(features), compiled.predict_proba(features))
