"""A realistic synthetic customer table for the demo, so the repo needs no external data.

Churn follows the patterns seen in public telecom data: month-to-month contracts, short tenure,
fibre internet and electronic cheques raise it; long contracts and auto-pay lower it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def synthetic_customers(rows: int, seed: int = 7, labeled: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], rows, p=[0.55, 0.21, 0.24])
    max_tenure = np.select([contract == "Two year", contract == "One year"], [72, 60], 36)
    tenure = np.minimum(rng.gamma(1.4, 14, rows).astype(int), max_tenure)
    internet = rng.choice(["Fiber optic", "DSL", "No"], rows, p=[0.44, 0.34, 0.22])
    base = np.select([internet == "Fiber optic", internet == "DSL"], [80.0, 55.0], 22.0)
    monthly = np.round(base + rng.normal(0, 9, rows).clip(-15, 30), 2)
    payment = rng.choice(
        [
            "Electronic check",
            "Mailed check",
            "Bank transfer (automatic)",
            "Credit card (automatic)",
        ],
        rows,
        p=[0.34, 0.23, 0.22, 0.21],
    )
    senior = (rng.random(rows) < 0.16).astype(int)
    partner = rng.choice(["Yes", "No"], rows)
    support = np.where(
        internet == "No", "No internet service", rng.choice(["Yes", "No"], rows, p=[0.3, 0.7])
    )
    total = np.round(monthly * tenure * rng.uniform(0.95, 1.05, rows), 2).astype(object)
    total[tenure == 0] = " "  # like the real exports: blank for brand-new customers
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{100000 + i}" for i in range(rows)],
            "gender": rng.choice(["Female", "Male"], rows),
            "SeniorCitizen": senior,
            "Partner": partner,
            "Tenure Months": tenure,
            "InternetService": internet,
            "TechSupport": support,
            "Contract": contract,
            "PaperlessBilling": rng.choice(["Yes", "No"], rows, p=[0.6, 0.4]),
            "PaymentMethod": payment,
            "MonthlyCharges": monthly,
            "TotalCharges": total,
        }
    )
    if labeled:
        logit = (
            -1.6
            + 1.3 * (contract == "Month-to-month")
            - 0.9 * (contract == "Two year")
            - 0.035 * tenure
            + 0.7 * (internet == "Fiber optic")
            + 0.55 * (payment == "Electronic check")
            + 0.35 * senior
            + 0.4 * (support == "No")
            + 0.25 * (partner == "No")
            + rng.normal(0, 0.6, rows)
        )
        frame["Churn"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "Yes", "No")
    return frame
