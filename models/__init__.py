"""Pure churn-model code: feature typing, training, scoring. No Prefect, no I/O beyond arguments."""
