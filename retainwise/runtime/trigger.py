"""The SQS trigger: one message -> one run of the `score-upload` deployment, never two.

A message is deleted only after its flow run exists; one it cannot act on stays on the queue and
reaches the dead-letter queue after `maxReceiveCount` receives.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import tenacity

from retainwise.adapters import aws, db
from retainwise.adapters.resources import Resources
from retainwise.config.settings import Settings

log = logging.getLogger("retainwise.runtime.trigger")
StartRun = Callable[[db.Prediction], str]


class Starter(Protocol):
    """Creates an upload's flow run, told the stored object's size when it is known."""

    def __call__(self, prediction: db.Prediction, stored_bytes: int | None = None) -> str: ...


def idempotency_key(prediction: db.Prediction) -> str:
    """One flow run per prediction and attempt: a redelivery is a no-op, a reaper retry is not."""
    attempts = prediction.attempts
    return f"score-{prediction.id}" + (f"-attempt-{attempts + 1}" if attempts else "")


RETRYABLE_STATUS = {429, 502, 503}


def is_busy(exc: BaseException) -> bool:
    """Worth retrying at once: the API was busy or unreachable. Safe even if a timed-out call did
    create the run: the idempotency key makes the retry return that same run."""
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in RETRYABLE_STATUS
    return isinstance(exc, httpx.TransportError)


def is_not_found(exc: BaseException) -> bool:
    import httpx
    from prefect.exceptions import ObjectNotFound

    return isinstance(exc, ObjectNotFound) or (
        isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 404
    )


def retry_busy(
    call: Callable[[], Any],
    timeout: float,
    base: float = 0.05,
    cap: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Call until it is not refused as busy, waiting a jittered 0-`cap` s between tries.

    The local Prefect server answers 503 when a SQLite write conflicts with another (it fails at
    once; its busy timeout does not apply). Prefect's client then waits 2, 4, 8, 16, 32 s, which
    was most of a burst's latency; a conflict clears in milliseconds, so short waits suffice.
    Gives up (re-raises) before a wait would pass `timeout` s, leaving the message to be
    redelivered.
    """
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_busy),
        wait=tenacity.wait_random_exponential(multiplier=base, max=cap),
        stop=tenacity.stop_before_delay(timeout),
        sleep=sleep,
        reraise=True,
    )
    return retrying(call)


def raise_if_busy(response: Any) -> None:
    """An httpx response hook: a busy answer raises at once, before Prefect's client sees it.

    Prefect's client sleeps 2**n s after each 503 even when told not to retry
    (PREFECT_CLIENT_MAX_RETRIES=0 still sleeps 2 s before returning the last answer).
    """
    import httpx

    if response.status_code in RETRYABLE_STATUS:
        raise httpx.HTTPStatusError(
            f"Prefect API busy ({response.status_code})",
            request=response.request,
            response=response,
        )


class DeploymentStarter:
    """Creates the flow run, named and tagged so the Prefect UI shows whose upload it is.

    Thread-safe, so the trigger can create a batch's runs at once: one API client shared by the
    threads (opened on first use, with the caller's Prefect settings but without the client's own
    slow retries: `raise_if_busy` and no retries on transport errors, `retry_busy` instead), and
    the deployment looked up once rather than per message as `run_deployment` does.
    """

    def __init__(
        self,
        deployment_name: str,
        timeout: float = 20.0,
        account_limit: int | None = None,
        model_version: Callable[[str], str | None] | None = None,
    ) -> None:
        import prefect.context
        from prefect.settings import PREFECT_CLIENT_MAX_RETRIES

        current = prefect.context.get_settings_context()
        self._profile = current.profile
        self._settings = current.settings.copy_with_update(updates={PREFECT_CLIENT_MAX_RETRIES: 0})
        self.deployment_name = deployment_name
        self.timeout = timeout
        self.model_version = model_version
        self._lock = threading.Lock()
        self._client: Any = None
        self._deployment_id: Any = None
        self.account_limit = account_limit
        self._limited: set[str] = set()

    def _settings_context(self):
        import prefect.context

        return prefect.context.SettingsContext(profile=self._profile, settings=self._settings)

    def _open(self) -> tuple[Any, Any]:
        with self._lock:
            if self._client is None:
                from prefect.client.orchestration import get_client

                with self._settings_context():
                    client = get_client(
                        sync_client=True,
                        httpx_settings={"event_hooks": {"response": [raise_if_busy]}},
                    )
                    client.__enter__()
                self._client = client
            if self._deployment_id is None:  # first use, or forgotten after a 404 (recreated)
                with self._settings_context():
                    self._deployment_id = retry_busy(
                        lambda: self._client.read_deployment_by_name(self.deployment_name),
                        self.timeout,
                    ).id
            return self._client, self._deployment_id

    def __call__(self, prediction: db.Prediction, stored_bytes: int | None = None) -> str:
        """The run's id; `stored_bytes` (the object's size, from routing) is passed to the run
        so it need not ask S3 again."""
        client, deployment_id = self._open()
        self._limit_account(client, f"account:{prediction.account}")
        tags = [f"account:{prediction.account}", f"model:{prediction.model_name}"]
        version = self.model_version(prediction.model_name) if self.model_version else None
        if version:  # the run re-tags only if it ends up loading another version
            tags.append(f"model-version:{version}")
        parameters: dict[str, Any] = {"prediction_id": prediction.id}
        if stored_bytes is not None:
            parameters["stored_bytes"] = stored_bytes

        def create() -> Any:
            with self._settings_context():
                return client.create_flow_run_from_deployment(
                    deployment_id,
                    parameters=parameters,
                    name=f"score-{prediction.id}",
                    idempotency_key=idempotency_key(prediction),
                    tags=tags,
                )

        try:
            return str(retry_busy(create, self.timeout).id)
        except Exception as exc:
            if is_not_found(exc):  # deleted and registered again: look it up for the redelivery
                with self._lock:
                    self._deployment_id = None
            raise

    def _limit_account(self, client: Any, name: str) -> None:
        """The global concurrency limit `account:<name>` (an upsert), once per account and process:
        each score-upload run holds one slot of it, so at most that many of the account's run."""
        if self.account_limit is None or name in self._limited:
            return

        from prefect.exceptions import ObjectAlreadyExists

        def upsert() -> None:
            try:
                client.upsert_global_concurrency_limit_by_name(name, self.account_limit)
            except ObjectAlreadyExists:  # another trigger created it between read and create
                pass

        with self._settings_context():
            retry_busy(upsert, self.timeout)
        self._limited.add(name)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.__exit__(None, None, None)
                self._client = None


def deployment_starter(
    deployment_name: str,
    timeout: float = 20.0,
    account_limit: int | None = None,
    model_version: Callable[[str], str | None] | None = None,
) -> DeploymentStarter:
    """The StartRun the trigger uses; close() it when done."""
    return DeploymentStarter(deployment_name, timeout, account_limit, model_version)


def champion_versions(
    read: Callable[[str], str], ttl: float = 5.0, now: Callable[[], float] = time.monotonic
) -> Callable[[str], str | None]:
    """`read(name)` (the champion's version) at most once per `ttl` seconds per model; None when
    it fails, so the run tags itself. Saves each run a read and an update of its tags."""
    cache: dict[str, tuple[str | None, float]] = {}
    lock = threading.Lock()

    def version(name: str) -> str | None:
        with lock:
            hit = cache.get(name)
            if hit and now() - hit[1] < ttl:
                return hit[0]
        try:
            value: str | None = read(name)
        except Exception:
            log.warning("could not read the champion of %s; its runs will tag themselves", name)
            value = None
        with lock:
            cache[name] = (value, now())
        return value

    return version


def deployment_for(size_bytes: int, settings: Settings) -> str:
    """Files the flow would score in chunks get their own Fargate task (`score-upload-large`);
    the rest go to the warm runners (`score-upload`)."""
    if size_bytes > settings.chunked_above_bytes:
        return settings.large_deployment_name
    return settings.deployment_name


def routed_by_size(env: Resources, starters: Mapping[str, Starter]) -> StartRun:
    """A StartRun that picks the deployment by the uploaded object's size (one HEAD request),
    and tells the run that size.

    An object that cannot be found goes to the warm runners, whose run records the failure.
    """
    from botocore.exceptions import ClientError

    def start(prediction: db.Prediction) -> str:
        try:
            size: int | None = aws.object_size(env.s3, env.settings.bucket, prediction.input_key)
        except ClientError:
            size = None
        return starters[deployment_for(size or 0, env.settings)](prediction, size)

    return start


def handle_message(env: Resources, message: aws.QueueMessage, start_run: StartRun) -> str:
    """Returns what happened: 'started', or why the message was left for redrive."""
    payload = message.upload()
    if payload is None:
        log.warning(
            "message %s is not a valid upload message; leaving it for the DLQ", message.message_id
        )
        return "unparseable"
    prediction = db.get_prediction(env.engine, payload.prediction_id)
    if prediction is None:
        log.warning(
            "message %s names unknown prediction %s; leaving it for the DLQ",
            message.message_id,
            payload.prediction_id,
        )
        return "unknown-prediction"
    if prediction.status is not db.Status.PENDING:
        # a late duplicate: a run already holds or finished the upload, so there is nothing to do
        env.queue.delete(message.receipt_handle)
        log.info(
            "message %s: prediction %s is already %s; deleted",
            message.message_id,
            prediction.id,
            prediction.status,
        )
        return "already-" + prediction.status.lower()
    started = time.monotonic()
    flow_run_id = start_run(prediction)
    env.queue.delete(message.receipt_handle)
    log.info(
        "prediction %s -> flow run %s (created in %.2f s)",
        prediction.id,
        flow_run_id,
        time.monotonic() - started,
    )
    return "started"


def handle_safely(env: Resources, message: aws.QueueMessage, start_run: StartRun) -> str:
    """handle_message on a pool thread: a failure leaves the message for redelivery, no more."""
    try:
        return handle_message(env, message, start_run)
    except Exception:
        log.exception("message %s failed; it will be redelivered", message.message_id)
        return "failed"


def handle_batch(
    env: Resources, messages: list[aws.QueueMessage], start_run: StartRun, pool: ThreadPoolExecutor
) -> list[str]:
    """Handle a received batch at once and wait for all of it.

    One message after another, a burst waited on each flow run creation in turn. Each message
    still gets exactly one run (the idempotency key) and is deleted only after its run exists
    (handle_message). Each task runs in a copy of the caller's context, so Prefect settings set
    there (e.g. a test's API URL) hold on the pool's threads too.
    """
    futures = [
        pool.submit(contextvars.copy_context().run, handle_safely, env, message, start_run)
        for message in messages
    ]
    return [future.result() for future in futures]


def run_trigger(
    env: Resources,
    start_run: StartRun,
    stop: threading.Event,
    wait_seconds: int = 1,
    concurrency: int | None = None,
) -> None:
    """Receive up to 10 messages a call and create their flow runs `concurrency` at a time."""
    workers = concurrency or env.settings.trigger_concurrency
    _ = env.engine  # built here, not raced for by the pool's threads (cached_property)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="trigger") as pool:
        while not stop.is_set():
            try:
                messages = env.queue.receive(wait_seconds=wait_seconds)
            except Exception:  # the queue being briefly unreachable must not kill the trigger
                log.exception("receiving from SQS failed; retrying")
                stop.wait(2)
                continue
            handle_batch(env, messages, start_run, pool)
