"""`GET /customers/{customer_id}`: one customer of the account over its uploads, and why.

The history (newest first) and the latest exact explanation: base value + the contributions =
the margin (log-odds before calibration). Another account's customer answers exactly like a
missing one (404, same body).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from retainwise.adapters import customers
from retainwise.entrypoints.api import errors
from retainwise.entrypoints.deps import CurrentAccount, Env


class Scored(BaseModel):
    prediction_id: str
    completed_at: datetime
    churn_probability: float
    churn_risk: str
    model_version: str


class Contribution(BaseModel):
    feature: str
    value: str | float | None
    contribution: float


class Explanation(BaseModel):
    prediction_id: str
    model_version: str
    base_value: float
    margin: float
    contributions: list[Contribution]


class Customer(BaseModel):
    customer_id: str
    history: list[Scored]
    explanation: Explanation | None


router = APIRouter(tags=["customers"])


@router.get("/customers/{customer_id}", response_model=Customer, responses=errors(404))
def get_customer(customer_id: str, account: CurrentAccount, env: Env) -> Customer:
    record = customers.customer(env.engine, account.name, customer_id)
    if record is None:
        raise HTTPException(404, f"no customer with id {customer_id}")
    return Customer.model_validate(record, from_attributes=True)  # times in UTC (the adapter)
