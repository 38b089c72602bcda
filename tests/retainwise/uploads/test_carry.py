"""The customer's own columns carried into the results: after the scored ones, in the file's
order, cells as uploaded, the same whole and in chunks; never scored; none named, no change."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from retainwise.adapters.mlflow_registry import LoadedModel
from retainwise.config.errors import UploadRejected
from retainwise.local.sample import synthetic_customers
from retainwise.uploads import carry
from retainwise.uploads.files import LocalFile, LocalSinks
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.scoring import Output, plan, score_object
from tests.helpers import trained_on_synthetic

SEED_HEADER = b"customer_id,churn_probability,churn_risk,predicted_churn\n"
WHOLE = ScoringPolicy(reasons=False)
CHUNKS = replace(WHOLE, chunked_above_bytes=1_000, chunk_bytes=8_000)


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    trained = trained_on_synthetic(800, seed=5)
    return LoadedModel("churn", "1", trained.pipeline, trained.profile)


@pytest.fixture
def source(tmp_path) -> LocalFile:
    """400 customers with their own columns around the model's: a zero-padded account number,
    an email, a plan; two rows rejected (a bad charge)."""
    frame = synthetic_customers(400, seed=9, labeled=False).astype(str)
    frame.insert(0, "Account No", [f"{i:07d}" for i in range(400)])
    frame["email"] = [f"c{i}+tag@example.com" for i in range(400)]
    frame["Plan"] = ["1.50" if i % 2 else "=HYPERLINK(1)" for i in range(400)]
    frame.loc[[3, 250], "MonthlyCharges"] = "lots"
    frame.loc[7, "email"] = ""
    path = tmp_path / "in.csv"
    path.write_bytes(frame.to_csv(index=False).encode())
    return LocalFile(path)


def scored(tmp_path, name, source, model, policy) -> dict[Output, bytes]:
    sinks = LocalSinks(
        {o: tmp_path / f"{name}.{o.value}" for o in (Output.RESULTS, Output.REJECTS)}
    )
    score_object(source, model, policy, sinks)
    return {o: (tmp_path / f"{name}.{o.value}").read_bytes() for o in sinks.paths}


def test_headers_resolve_in_the_files_order_as_model_columns_match():
    headers = ["Account No", "customer_id", "E-Mail", "plan"]
    assert carry.resolve(headers, ("plan", "email", "account_no")) == [
        "Account No",
        "E-Mail",
        "plan",
    ]
    assert carry.resolve(headers, ()) == []
    with pytest.raises(UploadRejected, match="not in the file: 'phone', 'region'"):
        carry.resolve(headers, ("plan", "phone", "region"))


@pytest.mark.parametrize("policy", [WHOLE, CHUNKS], ids=["whole", "chunks"])
def test_carried_columns_follow_the_scored_ones_as_uploaded(tmp_path, model, source, policy):
    assert plan(source, policy).chunked == (policy is CHUNKS)
    plain = scored(tmp_path, "plain", source, model, policy)
    carried = scored(
        tmp_path, "carried", source, model, replace(policy, carry=("Plan", "email", "account no"))
    )
    assert plain[Output.RESULTS].startswith(SEED_HEADER)  # none named: the seed's four columns
    assert carried[Output.REJECTS] == plain[Output.REJECTS]  # rejects unaffected
    lines = carried[Output.RESULTS].decode().splitlines()
    assert lines[0] == SEED_HEADER.decode().strip() + ",Account No,email,Plan"  # the file's order
    # every result line is the plain one, byte for byte, with the carried cells after it
    for with_cells, without in zip(lines, plain[Output.RESULTS].decode().splitlines(), strict=True):
        assert with_cells.startswith(without + ",")
    rows = pd.read_csv(tmp_path / "carried.results", dtype=str, keep_default_na=False)
    assert len(rows) == 398 and "C100003" not in set(rows["customer_id"])
    first = rows.iloc[0]
    assert (first["Account No"], first["email"], first["Plan"]) == (
        "0000000",
        "c0+tag@example.com",
        "'=HYPERLINK(1)",  # spreadsheet-safe, as the rejects' echoed cells are
    )
    assert rows.iloc[1]["Plan"] == "1.50" and rows.iloc[6]["email"] == ""  # text, not numbers


def test_a_carried_feature_still_scores_as_before(tmp_path, model, source):
    plain = scored(tmp_path, "plain", source, model, WHOLE)
    both = scored(tmp_path, "both", source, model, replace(WHOLE, carry=("MonthlyCharges",)))
    ours = pd.read_csv(tmp_path / "both.results", dtype={"MonthlyCharges": str})
    pd.testing.assert_frame_equal(ours.iloc[:, :4], pd.read_csv(tmp_path / "plain.results"))
    assert ours.columns[-1] == "MonthlyCharges" and both[Output.REJECTS] == plain[Output.REJECTS]


def test_the_id_column_carried_keeps_both_names(tmp_path, model, source):
    scored(tmp_path, "ids", source, model, replace(WHOLE, carry=("customer_id",)))
    rows = pd.read_csv(tmp_path / "ids.results", dtype=str)
    assert list(rows.columns)[-1] == "customer_id (uploaded)"
    assert (rows["customer_id"] == rows["customer_id (uploaded)"]).all()


@pytest.mark.parametrize("policy", [WHOLE, CHUNKS], ids=["whole", "chunks"])
def test_a_named_column_missing_fails_before_scoring(tmp_path, model, source, policy):
    with pytest.raises(UploadRejected, match="not in the file: 'phone'"):
        scored(tmp_path, "out", source, model, replace(policy, carry=("email", "phone")))
    assert not (tmp_path / "out.results").exists()
