"""Prefect flows: each reads like the lifecycle it runs; the work happens in tasks/ and models/."""
