"""One way to score an uploaded object, wherever it lives: route it, score it whole or in chunks.

The flow's tasks (an S3 object), shadow scoring (the same object, the challenger's model) and
`retainwise score` (a local file) all call `score_object`. Where the bytes come from (a `Source`)
and where the files go (`Sinks`) are passed in, so this module never imports boto3 or Prefect.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from models.scoring import NamedModel
from retainwise.config.errors import UploadRejected
from retainwise.uploads import halves, streaming
from retainwise.uploads.compression import GZIP_MAGIC, expanded_head
from retainwise.uploads.contacts import ContactList, History
from retainwise.uploads.parquet import as_csv_source
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.report import (
    ReportCounts,
    UploadReport,
    render_html,
    report_from_counts,
)

if TYPE_CHECKING:
    import pandas as pd

    from retainwise.uploads.validation import ValidatedUpload

ZIP_MAGIC = b"PK\x03\x04"


class Source(Protocol):
    """An uploaded file: its stored size, its first bytes, its blocks, or all of it."""

    def size(self) -> int: ...

    def head(self, size: int = 4096) -> bytes: ...

    def blocks(self) -> Iterator[bytes]: ...

    def read(self) -> bytes: ...


class Remembered:
    """A Source whose answers are asked of the store once.

    Routing an upload and scoring it ask for its size and first bytes several times (the size
    twice, the first 4 bytes for Parquet's magic twice, the first 4096 for the format), each a
    round trip to S3 otherwise: they are remembered. `whole()` makes one for a small upload,
    fetched whole by its first use (or `fetch_ahead`), one GET that answers everything after.
    """

    HEAD = 4096
    BLOCK = 4 * 2**20  # blocks of a body held whole, as the store's own reads cut them

    def __init__(self, source: Source, known: tuple[int, bytes] | None = None) -> None:
        self.source = source
        self._size: int | None = None if known is None else known[0]
        self._head: bytes | None = None if known is None else known[1]
        self._body: Future[bytes] | None = None  # set for a source held whole
        self._fetching = False

    @classmethod
    def whole(cls, source: Source) -> Remembered:
        """A small upload's source: all of it read at its first use, once. Only for objects a
        whole-file read would hold anyway (the flow's one-task path: at most 64 MiB stored)."""
        remembered = cls(source)
        remembered._body = Future()
        return remembered

    def fetch_ahead(self) -> Remembered:
        """Start reading a whole source now, on a thread of its own, so the read overlaps what
        the caller does meanwhile (the claim's other steps); a failure raises at first use."""
        if self._body is not None and not self._fetching:
            self._fetching = True
            reader = threading.Thread(
                target=fill, args=(self._body, self.source.read), name="fetch-ahead", daemon=True
            )
            reader.start()
        return self

    def size(self) -> int:
        if self._size is None:
            self._size = len(self.read()) if self._body is not None else self.source.size()
        return self._size

    def head(self, size: int = 4096) -> bytes:
        if self._body is not None:
            return self.read()[:size]
        if size > self.HEAD:
            return self.source.head(size)
        if self._head is None:
            self._head = self.source.head(self.HEAD) if self.size() else b""
        return self._head[:size]

    def blocks(self) -> Iterator[bytes]:
        if self._body is None:
            return self.source.blocks()
        body = self.read()
        return (body[at : at + self.BLOCK] for at in range(0, len(body), self.BLOCK))

    def read(self) -> bytes:
        if self._body is None:
            return self.source.read()
        self.fetch_ahead()  # (a no-op once started)
        return self._body.result()

    def known(self) -> tuple[int, bytes] | None:
        """(size, first bytes) when both were asked, else None."""
        if self._body is not None and self._body.done() and not self._body.exception():
            return self.size(), self.head(self.HEAD)
        if self._size is None or self._head is None:
            return None
        return self._size, self._head


def fill(body: Future[bytes], read: Callable[[], bytes]) -> None:
    """`body` set to what `read` returns, or to what it raised."""
    try:
        body.set_result(read())
    except BaseException as exc:  # the reader meets it at first use
        body.set_exception(exc)


def remembered(source: Source, route: Route | None = None) -> Remembered:
    if isinstance(source, Remembered):
        return source
    return Remembered(source, None if route is None else route.stored)


class Output(Enum):
    """The files a scored upload produces."""

    RESULTS = "results"
    REJECTS = "rejects"
    REPORT = "report"  # the JSON summary
    REPORT_HTML = "report_html"
    ACTIONS = "actions"  # the contact list (uploads.contacts)


class Stream(Protocol):
    """A file written as chunks are scored: completed at the end, or aborted (nothing kept)."""

    def write(self, data: bytes) -> int: ...

    def complete(self) -> None: ...

    def abort(self) -> None: ...


class Sinks(Protocol):
    """Where a scored upload's files go; an output without a location is not kept."""

    def location(self, output: Output) -> str | None: ...

    def put(self, files: Mapping[Output, bytes]) -> None:
        """Whole files, written together (the last write of both paths)."""
        ...

    def open(self, output: Output) -> Stream: ...


class Discard:
    """A Stream that keeps nothing (an output the sinks do not want)."""

    def write(self, data: bytes) -> int:
        return len(data)

    def complete(self) -> None:
        return None

    def abort(self) -> None:
        return None


@dataclass(frozen=True)
class Route:
    """How an upload is scored: its (decompressed) size and whether it goes in chunks."""

    size: int
    chunked: bool
    # what routing learnt of the stored object (its size, its first bytes), so scoring it does
    # not ask the store again; empty when unknown
    stored: tuple[int, bytes] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ScoredObject:
    report: UploadReport  # as written beside the results
    seconds: dict[str, float]  # per stage: reading, validating, scoring, writing
    chunked: bool


def plan(source: Source, policy: ScoringPolicy) -> Route:
    """Refuse an empty file or one over the size limit; route the rest by decompressed size.

    A gzip file is inflated once as a stream and thrown away (about 1 s per 200 MB), so one that
    expands past the limit fails here, before anything is scored. A large file that cannot be
    cut into records (UTF-16, binary) is refused from its first bytes. Parquet is routed by the
    size of its data (parquet.as_csv_source).
    """
    stored = remembered(source)
    if stored.size() == 0:  # before anything reads a range of it (S3 refuses one of nothing)
        raise UploadRejected("the file is empty")
    source = as_csv_source(stored, policy.limits)
    size = source.size()
    head = source.head()
    if head.startswith(GZIP_MAGIC):
        limit = policy.limits.max_bytes
        size, head = expanded_head(source.blocks(), limit, limit)
    large = policy.is_large(size)
    if large and not streaming.streamable(head) and not head.startswith(ZIP_MAGIC):
        streaming.refuse_unstreamable(head)
    return Route(size, large and streaming.streamable(head), stored.known())


def score_object(
    source: Source,
    model: NamedModel,
    policy: ScoringPolicy,
    sinks: Sinks,
    prediction_id: str | None = None,
    route: Route | None = None,
    history: History | None = None,
    helper: halves.Helper | None = None,
) -> ScoredObject:
    """Read, validate, score and write one upload; `route` when already planned. An actions
    list is built when the sinks keep one, against and into the account's `history` if given;
    a large whole file is scored in two halves at once with a warm `helper` process."""
    source = remembered(source, route)
    route = route or plan(source, policy)
    source = as_csv_source(source, policy.limits)
    job = Job(source, model, policy, sinks, prediction_id, history, helper, route.size)
    return job.in_chunks() if route.chunked else job.whole()


@dataclass(frozen=True)
class Job:
    """One upload to score: where it is, with what, under which policy, to where."""

    source: Source
    model: NamedModel
    policy: ScoringPolicy
    sinks: Sinks
    prediction_id: str | None
    history: History | None = None
    helper: halves.Helper | None = None  # scores a large whole file's second half
    size: int | None = None  # decompressed bytes, when routing knew them

    def contacts(self) -> ContactList | None:
        """The actions list to feed, when the sinks keep one."""
        if self.sinks.location(Output.ACTIONS) is None:
            return None
        return ContactList(self.model, self.policy, self.history, self.size)

    def whole(self) -> ScoredObject:
        """Files under the chunked threshold: read whole (a large one scored as two halves at
        once), then every file written at once."""
        scored = halves.score_whole(self.source.read(), self.model, self.policy, self.helper)
        report = report_from_counts(
            scored.counts,
            self.model,
            self.prediction_id,
            drift_alert_psi=self.policy.drift_alert_psi,
        )
        files = {Output.REJECTS: scored.rejects_csv}
        if scored.results_csv is not None:
            files[Output.RESULTS] = scored.results_csv
            actions = self.actions_csv(scored.parts)
            if actions is not None:
                files[Output.ACTIONS] = actions
        report = with_files(report, self.sinks)
        self.sinks.put({**files, **report_files(report, self.sinks)})
        return ScoredObject(report, scored.seconds, chunked=False)

    def actions_csv(self, parts: list[tuple[pd.DataFrame, ValidatedUpload]]) -> bytes | None:
        """The whole file's actions list from its (results, validated rows) parts in file
        order, when the sinks keep one: bytes written with the other files in the one `put`
        (a multipart upload of its own cost three more round trips)."""
        contacts = self.contacts()
        if contacts is None:
            return None
        with contacts:
            for results, upload in parts:
                contacts.add(results, upload)
            buffer = io.BytesIO()
            contacts.write_to(buffer)
        return buffer.getvalue()

    def in_chunks(self) -> ScoredObject:
        """Large files chunk by chunk in bounded memory; results and rejects are streamed out
        while later chunks are scored (and the actions list fed), the results dropped when the
        upload fails."""
        with self.contacts() or nullcontext() as contacts:
            counts, totals, started = self.stream_out(contacts)
        totals.timed("writing", started)
        report = report_from_counts(
            counts, self.model, self.prediction_id, drift_alert_psi=self.policy.drift_alert_psi
        )
        report = with_files(report, self.sinks)
        self.sinks.put(report_files(report, self.sinks))
        return ScoredObject(report, dict(totals.seconds), chunked=True)

    def stream_out(
        self, contacts: ContactList | None
    ) -> tuple[ReportCounts, streaming.Totals, float]:
        """Score the chunks into the result and reject streams (and the actions list); returns
        the counts, totals and when the writing at the end began."""
        results, rejects = self.sinks.open(Output.RESULTS), self.sinks.open(Output.REJECTS)
        try:
            counts, totals = streaming.score_stream(
                self.source.blocks(),
                self.model,
                self.policy,
                results,
                rejects,
                contacts,
            )
            started = time.perf_counter()
            if counts.failure is not None:
                results.abort()
            elif contacts is not None:
                finish_actions(contacts, self.sinks)
            complete([rejects] if counts.failure is not None else [results, rejects])
        except BaseException:
            results.abort()
            rejects.abort()
            raise
        return counts, totals, started


def finish_actions(contacts: ContactList, sinks: Sinks) -> None:
    """The actions list written to its sink whole, or nothing of it kept."""
    stream = sinks.open(Output.ACTIONS)
    try:
        contacts.write_to(stream)
    except BaseException:
        stream.abort()
        raise
    stream.complete()


def complete(streams: list[Stream]) -> None:
    """Complete the streams at once (each may send its last part)."""
    with ThreadPoolExecutor(len(streams), thread_name_prefix="complete") as pool:
        done = [pool.submit(stream.complete) for stream in streams]
    for finished in done:
        finished.result()


def with_files(report: UploadReport, sinks: Sinks) -> UploadReport:
    """The report naming the files beside it (no results when the upload failed)."""
    failed = report["error"] is not None
    return {
        **report,
        "files": {
            "results": None if failed else sinks.location(Output.RESULTS),
            "rejects": sinks.location(Output.REJECTS),
            "report_html": sinks.location(Output.REPORT_HTML),
        },
    }


def report_files(report: UploadReport, sinks: Sinks) -> dict[Output, bytes]:
    """The JSON and HTML report, for the sinks that keep them."""
    files = {}
    if sinks.location(Output.REPORT) is not None:
        files[Output.REPORT] = json.dumps(report, indent=2, default=str).encode()
    if sinks.location(Output.REPORT_HTML) is not None:
        files[Output.REPORT_HTML] = render_html(report).encode("utf-8")
    return files
