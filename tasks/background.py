"""Work a customer does not wait for (an upload's monitoring figures and stored explanations),
done after the upload is COMPLETED without holding up the next run of the same process.

A warm runner child hands it to one background thread for its whole life (`in_background`), so
its next flow run starts at once; the child waits for what is left before it exits. Any other
process (a flow called directly, a run in its own container) does it at once, before the flow
returns. Each piece logs to the flow run it belongs to, also after the run has ended, and a
failed piece is logged as a warning and never changes the upload's status.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

log = logging.getLogger("retainwise.tasks.background")


class _Slot:
    executor: ThreadPoolExecutor | None = None
    lock = threading.Lock()


def after_run(work: Callable[[], object]) -> None:
    """Run `work` on this process's background thread when it has one, else now."""
    with _Slot.lock:
        executor = _Slot.executor
    if executor is None:
        _logged(work)
    else:
        executor.submit(_logged, work)


def _logged(work: Callable[[], object]) -> None:
    try:
        work()
    except Exception:  # each piece logs its own failure; this is the last resort
        log.exception("work after a run failed")


@contextmanager
def in_background() -> Iterator[None]:
    """For the block (a warm child's life), `after_run` work goes to one background thread, in
    the order handed over; leaving the block waits until it is all done."""
    executor = ThreadPoolExecutor(1, thread_name_prefix="after-run")
    with _Slot.lock:
        _Slot.executor = executor
    try:
        yield
    finally:
        with _Slot.lock:
            _Slot.executor = None
        executor.shutdown(wait=True)
