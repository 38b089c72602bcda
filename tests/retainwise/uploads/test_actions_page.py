"""Reading one page of a stored actions list, and the first rows whose risk rose."""

import io

import numpy as np
import pytest

from retainwise.uploads import actions
from retainwise.uploads.actions import ActionsBuilder
from retainwise.uploads.blocks import BlockReader
from tests.retainwise.uploads.test_actions import Recorder, scored_rows


def pages_of(probabilities, query: actions.ActionsQuery, previous=None, tmp_path=None):
    builder = ActionsBuilder(Recorder(), tmp_path, top_n=2, previous=previous)
    for start in range(0, len(probabilities), 7):
        builder.add(*scored_rows(probabilities[start : start + 7], start))
    sink = io.BytesIO()
    builder.write_csv(sink)
    data = sink.getvalue()
    blocks = [data[i : i + 97] for i in range(0, len(data), 97)]  # rows split across blocks
    return actions.read_view(BlockReader(blocks), query)


def test_read_page_pages_filters_and_searches_in_rank_order(tmp_path):
    p = np.linspace(0.99, 0.01, 40)
    first = pages_of(p, actions.ActionsQuery(size=15), tmp_path=tmp_path)
    assert [r["rank"] for r in first.rows] == list(range(1, 16)) and first.more
    last = pages_of(p, actions.ActionsQuery(size=15, page=2), tmp_path=tmp_path)
    assert [r["rank"] for r in last.rows] == list(range(31, 41)) and not last.more
    low = pages_of(p, actions.ActionsQuery(tier="LOW", size=100), tmp_path=tmp_path)
    assert {r["churn_risk"] for r in low.rows} == {"LOW"} and len(low.rows) == 12
    found = pages_of(p, actions.ActionsQuery(search="C1"), tmp_path=tmp_path)
    assert sorted(r["customer_id"] for r in found.rows) == ["c1"] + [f"c{i}" for i in range(10, 20)]
    assert found.rows[0]["previous_probability"] is None


def test_read_page_collects_the_first_rows_whose_risk_rose(tmp_path):
    p = np.linspace(0.99, 0.01, 40)
    previous = {f"c{i}": p[i] - (0.05 if i % 9 == 4 else 0.0) for i in range(40)}
    page = pages_of(p, actions.ActionsQuery(size=5, rose=3), previous, tmp_path)
    assert [r["customer_id"] for r in page.rose] == ["c4", "c13", "c22"]
    assert page.rose[0]["previous_probability"] == pytest.approx(p[4] - 0.05)
    empty = pages_of(p, actions.ActionsQuery(rose=3), None, tmp_path)
    assert empty.rose == [] and len(empty.rows) == 40


def test_the_rose_rows_are_looked_for_only_near_the_top(tmp_path):
    p = np.linspace(0.99, 0.01, 40)
    previous = {f"c{i}": p[i] - (0.05 if i in (3, 30) else 0.0) for i in range(40)}
    query = actions.ActionsQuery(size=5, rose=3, rose_within=20)
    assert [r["customer_id"] for r in pages_of(p, query, previous, tmp_path).rose] == ["c3"]
