"""The warm runner publishes its scaling metric (RetainWise/ScoreUploadRunsWaiting) once a minute.

A daemon thread in the runner's parent process calls `adapters.scaling.report_waiting_runs`. Any
error (CloudWatch, the Prefect API) is logged and the next tick tries again: the metric is a
scaling hint, and its absence must never take the runner down. Only with RETAINWISE_ENV=production;
the local stack has no autoscaling to feed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

log = logging.getLogger("retainwise.runtime.scaling_reporter")
INTERVAL_SECONDS = 60.0


class WaitingRunsReporter:
    """Calls `report(now)` every `interval` seconds in a daemon thread; errors are logged only.

    `paused()` holds the lock a report runs under, so the runner can fork a worker child while no
    report is in flight (a fork must not copy a lock or a connection held mid-request).
    """

    def __init__(self, report: Callable[[datetime], int], interval: float = INTERVAL_SECONDS):
        self.report = report
        self.interval = interval
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def tick(self, now: datetime) -> int | None:
        """One report: the count published, or None if it failed (logged)."""
        with self._lock:
            try:
                return self.report(now)
            except Exception:
                log.exception(
                    "publishing the runners' scaling metric failed; retrying in %.0f s",
                    self.interval,
                )
                return None

    def run(self) -> None:
        while True:
            self.tick(datetime.now(UTC))
            if self.stop.wait(self.interval):
                return

    def start(self) -> WaitingRunsReporter:
        self._thread = threading.Thread(target=self.run, name="scaling-reporter", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        with self._lock:
            yield


def for_settings(settings) -> WaitingRunsReporter | None:
    """The production reporter for these settings, or None outside production."""
    if settings.env != "production":
        return None
    from retainwise.adapters import aws, scaling

    cloudwatch = aws.client("cloudwatch", settings)
    return WaitingRunsReporter(lambda now: scaling.report_waiting_runs(settings, cloudwatch, now))
