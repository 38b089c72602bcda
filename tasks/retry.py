"""Retry policy shared by every task that touches S3, SQS, MLflow or the database.

Only transient faults (retainwise.config.faults.is_transient: connection errors, throttling, 5xx
answers, a dropped database connection) are retried, with backoff; everything else, a bad file
and a bug alike, fails at once. Each failure carries the number of tries that really happened.
"""

from __future__ import annotations

import functools

from prefect import task
from prefect.cache_policies import NO_CACHE

from retainwise.adapters import faults

IO_TASK = dict(retries=3, retry_delay_seconds=[1, 2, 4], retry_jitter_factor=0.5)


def is_transient(task, task_run, state) -> bool:
    """Prefect's retry_condition_fn: retry only what faults.is_transient calls transient."""
    return faults.is_transient(state.result(raise_on_failure=False))


def io_task(name: str, **options):
    """A Prefect task with the retry policy, whose exceptions carry `tries` (the run_count of
    the task run when it gave up), so the failure message counts tries that happened."""
    def decorate(function):
        @functools.wraps(function)
        def counted(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except Exception as exc:
                from prefect.runtime import task_run

                exc.tries = task_run.run_count or 1
                raise

        return task(name=name, cache_policy=NO_CACHE, retry_condition_fn=is_transient,
                    **{**IO_TASK, **options})(counted)
    return decorate


def describe_failure(error: BaseException, flow_run_id: str | None) -> str:
    """What a customer reads on a FAILED upload that was not their file's fault; no traceback."""
    tries = getattr(error, "tries", 1)
    if not faults.is_transient(error):
        return (f"internal error while scoring ({type(error).__name__}); "
                f"support has the details under flow run {flow_run_id}")
    import botocore.exceptions as boto
    import sqlalchemy.exc as sql

    cause = ("the database could not be reached" if isinstance(error, sql.SQLAlchemyError)
             else "the file store (S3) could not be reached"
             if isinstance(error, (boto.BotoCoreError, boto.ClientError))
             else "a service could not be reached")
    tried = "1 try" if tries == 1 else f"{tries} tries"
    return (f"{cause} after {tried} ({type(error).__name__}); nothing was scored. "
            f"Upload the file again; support has the details under flow run {flow_run_id}")
