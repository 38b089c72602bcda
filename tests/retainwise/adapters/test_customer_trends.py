"""The dashboard's account figures on SQLite and PostgreSQL: what drives churn in an upload, and
who moved into HIGH since the same model's upload before it, scoped by account."""

import numpy as np
import pandas as pd
import pytest

from models.explain import Explanation
from retainwise.adapters import customer_trends, customers
from tests.retainwise.adapters.test_customers import completed, scored, upload


def test_drivers_are_mean_absolute_contributions_over_the_uploads_explained_customers(
    migrated_engine,
):
    first, other = completed(migrated_engine, "acme"), completed(migrated_engine, "bravo")
    X = pd.DataFrame({"tenure": [2.0, 50.0], "Contract": ["Month-to-month", "Two year"]})
    shares = np.array([[0.5, 1.0], [-0.25, -2.0]])
    explained = Explanation(list(X.columns), np.full(2, -1.0), shares)
    customers.record_explanations(
        migrated_engine, upload(first), pd.Series(["a", "b"]), explained, X
    )
    theirs = Explanation(list(X.columns), np.full(2, -1.0), shares * 10)
    customers.record_explanations(
        migrated_engine, upload(other, "bravo"), pd.Series(["a", "b"]), theirs, X
    )
    found = customer_trends.drivers(migrated_engine, "acme", first)
    assert found.explained == 2
    assert found.features == [("Contract", pytest.approx(1.5)), ("tenure", pytest.approx(0.375))]
    assert customer_trends.drivers(migrated_engine, "acme", other).features == []


def test_drivers_average_a_bounded_sample_and_still_count_every_explained_customer(
    migrated_engine, monkeypatch
):
    first = completed(migrated_engine, "acme")
    X = pd.DataFrame({"tenure": [2.0, 50.0]})
    explained = Explanation(["tenure"], np.full(2, -1.0), np.array([[0.5], [-2.0]]))
    customers.record_explanations(
        migrated_engine, upload(first), pd.Series(["b", "a"]), explained, X
    )
    monkeypatch.setattr(customer_trends, "DRIVER_SAMPLE", 1)
    found = customer_trends.drivers(migrated_engine, "acme", first)
    assert (found.explained, found.averaged, found.features) == (2, 1, [("tenure", 2.0)])  # "a"


def test_moved_into_high_compares_with_the_same_models_previous_upload(migrated_engine):
    first = completed(migrated_engine, "acme")
    customers.record_scores(
        migrated_engine,
        upload(first),
        scored(["a", "b", "c", "d"], [0.2, 0.7, 0.3, 0.1], ["LOW", "HIGH", "MEDIUM", "LOW"]),
    )
    assert customer_trends.moved_into_high(migrated_engine, "acme", first) is None
    elsewhere = completed(migrated_engine, "acme", model="other")
    customers.record_scores(migrated_engine, upload(elsewhere, days=1), scored(["a"], [0.9]))
    theirs = completed(migrated_engine, "bravo")
    customers.record_scores(migrated_engine, upload(theirs, "bravo", 2), scored(["a"], [0.1]))
    second = completed(migrated_engine, "acme")
    customers.record_scores(
        migrated_engine,
        upload(second, days=30),
        scored(["a", "b", "c", "e"], [0.8, 0.9, 0.7, 0.9], ["HIGH", "HIGH", "HIGH", "HIGH"]),
    )
    assert customer_trends.previous_upload(migrated_engine, "acme", second) == first
    assert customer_trends.moved_into_high(migrated_engine, "acme", second) == 2  # a and c
    assert customer_trends.moved_into_high(migrated_engine, "bravo", second) is None
