"""Prefect tasks: thin wrappers that give pure functions retries, logging and a place in the UI."""
