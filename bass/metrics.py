"""`GET /metrics`: what `bass serve` does, in Prometheus's text format.

The counts are bass's own: plain ints and histograms of fixed buckets, updated where
things happen, on the event loop (a build claimed: bass.worker_api; a build ended: an
`on_finished` callback; an OTLP request answered: the receiver's IngestStats; a
retention pass: bass.pruning). Nothing of them costs more than a dict increment, and
prometheus_client is imported only by the first scrape: a server nobody scrapes never
loads it. A scrape copies the counts on the event loop, then in a worker thread reads
what the database knows (queued and running builds, the store's size) and the
forwarders' counters, and renders all of it through a custom collector on a registry of
this app (never prometheus_client's global one: one process may run several apps).

Who may read it is bass.guard's: open on loopback without users, like the dashboard;
with a users file, a person's API token or session (SECURITY.md).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bass.refs import redact_url
from bass.store import builds

if TYPE_CHECKING:
    from bass.ingest.receiver import Receiver
    from bass.orchestrator import Orchestrator
    from bass.store.db import Database

# Bucket bounds (seconds): each histogram's are fixed, so its memory is too.
PICKUP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)
INGEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Pipelines counted by name, at most; builds of more (a sender with a token can start
# builds of any name by hand) are counted under OTHER, so memory stays bounded.
MAX_PIPELINES = 1000
OTHER = "~other"  # no pipeline's name: names are letters, digits, ".", "_" and "-"
MAX_WORKERS = 4096  # worker names remembered, at most (the oldest are forgotten)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the format every scraper reads
PIPELINE = ("pipeline",)
SIGNAL_ENCODING = ("signal", "encoding")
DESTINATION = ("signal", "destination")

# Every family /metrics has: name → (type, labels, help). README's "Metrics" lists them.
FAMILIES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "bass_builds_queued": ("gauge", PIPELINE, "Builds waiting for a worker."),
    "bass_builds_running": ("gauge", PIPELINE, "Builds a worker is running."),
    "bass_builds_ended_total": (
        "counter", ("pipeline", "status"), "Builds ended since bass started, by status."
    ),
    "bass_build_pickup_seconds": ("histogram", PIPELINE, "From queued to claimed by a worker."),
    "bass_build_duration_seconds": (
        "histogram", PIPELINE, "From claimed to ended, of builds that ran."
    ),
    "bass_workers_connected": (
        "gauge", (), "Workers in a long-poll now or seen within the lease period."
    ),
    "bass_workers_waiting": ("gauge", (), "Workers in a long-poll now."),
    "bass_otlp_requests_total": (
        "counter", ("signal", "encoding", "result"),
        "OTLP export requests answered: accepted, or why they were refused.",
    ),
    "bass_otlp_records_stored_total": (
        "counter", SIGNAL_ENCODING, "Spans (signal traces) and log records stored."
    ),
    "bass_otlp_records_rejected_total": (
        "counter", SIGNAL_ENCODING,
        "Records left out of accepted requests: bad ids, or a trace the sender may not write.",
    ),
    "bass_otlp_ingest_seconds": (
        "histogram", SIGNAL_ENCODING, "From an OTLP request's arrival to its records stored."
    ),
    "bass_otlp_inflight_bytes": (
        "gauge", (), "Bytes the OTLP requests in flight hold (at most --max-inflight-mb)."
    ),
    "bass_store_size_bytes": ("gauge", (), "The database file and its write-ahead log."),
    "bass_forward_queue_records": (
        "gauge", DESTINATION, "Records waiting to be sent to a destination."
    ),
    "bass_forward_queue_bytes": (
        "gauge", (), "Bytes of requests in the forwarding queue, all destinations'."
    ),
    "bass_forward_queue_limit_bytes": (
        "gauge", (), "The forwarding queue's cap (--forward-queue-mb)."
    ),
    "bass_forward_records_sent_total": ("counter", DESTINATION, "Records a destination took."),
    "bass_forward_records_dropped_total": (
        "counter", DESTINATION,
        "Records given up on: refused by the destination, or dropped by the queue's cap.",
    ),
    "bass_forward_requests_retried_total": (
        "counter", DESTINATION, "Requests sent again after a retryable failure."
    ),
    "bass_retention_runs_total": (
        "counter", ("result",), "Passes of the retention loop: ok, or failed."
    ),
    "bass_retention_deleted_total": (
        "counter", ("what",), "What retention removed: builds, traces, log_records."
    ),
}  # fmt: skip


class Histogram:
    """Counts of observations at or below each bound (the last count: above them all),
    and their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # a value on a bound is in it
        self.sum += value

    def copy(self) -> Histogram:
        other = Histogram(self.bounds)
        other.counts = list(self.counts)
        other.sum = self.sum
        return other

    def cumulative(self) -> list[tuple[float, int]]:
        """(bound, observations at or below it), the last bound +Inf: Prometheus's form."""
        out, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append((float(bound), total))
        return out


class Workers:
    """Which workers are connected: those in a long-poll now, and those seen (a dequeue,
    a heartbeat, a result) within the last lease period."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.seen: dict[str, float] = {}  # name → when last seen, oldest first
        self.polling: Counter[str] = Counter()  # name → its long-polls under way

    def saw(self, name: str) -> None:
        self.seen.pop(name, None)  # to the end: the dict stays in order of time
        self.seen[name] = self.clock()
        if len(self.seen) > MAX_WORKERS:
            del self.seen[next(iter(self.seen))]

    @contextmanager
    def poll(self, name: str) -> Iterator[None]:
        """A long-poll of worker `name` under way: connected until it ends, and seen then."""
        self.polling[name] += 1
        try:
            yield
        finally:
            self.polling[name] -= 1
            if self.polling[name] <= 0:
                del self.polling[name]
            self.saw(name)

    def connected(self, within: float) -> int:
        """Workers polling now or seen in the last `within` seconds."""
        cutoff = self.clock() - within
        while self.seen and next(iter(self.seen.values())) < cutoff:
            del self.seen[next(iter(self.seen))]  # gone: forgotten
        return len(self.seen.keys() | self.polling.keys())


Samples = dict[tuple[str, ...], Any]  # label values → a number or a Histogram


@dataclass
class Snapshot:
    """The counts as they were at one moment, by family, for a worker thread to render
    with what it reads there (the database, the forwarders' counters)."""

    samples: dict[str, Samples]
    forwarders: list[Any] = field(default_factory=list)  # bass.ingest.forward.Forwarder


class Metrics:
    """The counts of one `bass serve` and its `/metrics` answer."""

    def __init__(
        self,
        db: Database,
        orchestrator: Orchestrator,
        receiver: Receiver,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.orchestrator = orchestrator
        self.receiver = receiver
        self.workers = Workers(clock)
        self.ended: Counter[tuple[str, str]] = Counter()  # (pipeline, status) → builds
        self.pickup: dict[str, Histogram] = {}  # pipeline → queued → claimed, seconds
        self.duration: dict[str, Histogram] = {}  # pipeline → claimed → ended, seconds
        self.retention_runs: Counter[str] = Counter()  # "ok", "failed" → passes
        self.retention_deleted: Counter[str] = Counter()  # "builds", … → removed
        self._pipelines: set[str] = set()
        self._scraping = anyio.Lock()  # one scrape at a time: they cannot pile up threads
        self._registry: Any = None  # prometheus_client's, made by the first scrape
        self._collector = _Collector()

    # -- where things happen (all on the event loop) --------------------------------------

    def build_claimed(self, build: dict[str, Any]) -> None:
        """A worker took `build`: how long it waited in the queue."""
        waited = max(0.0, (build["started_at"] or 0.0) - build["queued_at"])
        _histogram(self.pickup, self._pipeline(build["pipeline"]), PICKUP_BUCKETS).observe(waited)

    async def build_finished(self, build: dict[str, Any]) -> None:
        """An `on_finished` callback of the orchestrator: a build ended."""
        pipeline = self._pipeline(build["pipeline"])
        self.ended[pipeline, build["state"]] += 1
        if build.get("worker") is not None or build.get("trigger") == "local":  # it ran
            took = max(0.0, build["finished_at"] - (build["started_at"] or build["finished_at"]))
            _histogram(self.duration, pipeline, DURATION_BUCKETS).observe(took)

    def retention_pass(self, removed: dict[str, int] | None) -> None:
        """A pass of bass.pruning ended: what it removed, or None when it failed."""
        self.retention_runs["ok" if removed is not None else "failed"] += 1
        for what, n in (removed or {}).items():
            self.retention_deleted[what.replace(" ", "_")] += n

    def _pipeline(self, name: str) -> str:
        if name in self._pipelines:
            return name
        if len(self._pipelines) >= MAX_PIPELINES:
            return OTHER
        self._pipelines.add(name)
        return name

    # -- the scrape -----------------------------------------------------------------------

    async def exposition(self) -> bytes:
        """The text a scraper reads. The counts are copied here, on the event loop that
        changes them; the database is read and the text made in a worker thread."""
        async with self._scraping:
            snapshot = self.snapshot()
            return await to_thread.run_sync(self.render, snapshot)

    def snapshot(self) -> Snapshot:
        """The counts now: copies, made on the event loop that changes them."""
        stats = self.receiver.stats

        def by_key(counts: dict[Any, Any]) -> Samples:
            out: Samples = {}
            for key, n in counts.items():
                copied = n.copy() if isinstance(n, Histogram) else n
                out[key if isinstance(key, tuple) else (key,)] = copied
            return out

        samples: dict[str, Samples] = {
            "bass_builds_ended_total": by_key(self.ended),
            "bass_build_pickup_seconds": by_key(self.pickup),
            "bass_build_duration_seconds": by_key(self.duration),
            "bass_workers_connected": {(): self.workers.connected(self.orchestrator.lease_seconds)},
            "bass_workers_waiting": {(): self.orchestrator.waiting},
            "bass_otlp_requests_total": by_key(stats.by_answer),
            "bass_otlp_records_stored_total": by_key(stats.stored_by),
            "bass_otlp_records_rejected_total": by_key(stats.rejected_by),
            "bass_otlp_ingest_seconds": by_key(stats.seconds_by),
            "bass_otlp_inflight_bytes": {(): self.receiver.budget.used},
            "bass_retention_runs_total": by_key(self.retention_runs),
            "bass_retention_deleted_total": by_key(self.retention_deleted),
        }
        forwarders = [f for kind in self.receiver.forwarders.values() for f in kind]
        return Snapshot(samples, forwarders)

    def render(self, snapshot: Snapshot) -> bytes:
        """In a worker thread: what the database says now, and the counts, as text."""
        from prometheus_client import CollectorRegistry, generate_latest

        if self._registry is None:
            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(self._collector)
        active = self.db.read(builds.waiting_and_running)
        self._collector.now = values(snapshot, active, self.db.size())
        try:
            return generate_latest(self._registry)
        finally:
            self._collector.now = None


def _histogram(by: dict[str, Histogram], key: str, bounds: tuple[float, ...]) -> Histogram:
    found = by.get(key)
    if found is None:
        found = by[key] = Histogram(bounds)
    return found


class _Collector:
    """prometheus_client's custom collector (anything with `collect`) over one scrape's
    values, set as `now` for the length of a `generate_latest`."""

    def __init__(self) -> None:
        self.now: dict[str, Samples] | None = None

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )
        from prometheus_client.utils import floatToGoString

        make = {
            "counter": CounterMetricFamily,
            "gauge": GaugeMetricFamily,
            "histogram": HistogramMetricFamily,
        }
        for name, (kind, labels, doc) in FAMILIES.items():
            family = make[kind](name, doc, labels=list(labels))
            for key, value in sorted((self.now or {}).get(name, {}).items()):
                if kind == "histogram":
                    buckets = [(floatToGoString(le), n) for le, n in value.cumulative()]
                    family.add_metric(list(key), buckets, value.sum)
                else:
                    family.add_metric(list(key), value)
            yield family


def values(
    snapshot: Snapshot, active: list[dict[str, Any]], store_bytes: int
) -> dict[str, Samples]:
    """Every family's samples: the snapshot's, the database's queued and running builds
    and size, and the forwarders' counters (read here: each sender thread keeps its own
    under a lock)."""
    forwarders = [(f.status(), f.reader.queue) for f in snapshot.forwarders]

    def per_destination(name: str) -> Samples:
        return {(st["kind"], destination(st["url"])): st[name] for st, _ in forwarders}

    queue = forwarders[0][1] if forwarders else None  # one queue, all destinations'
    return {
        **snapshot.samples,
        "bass_builds_queued": {(r["pipeline"],): r["n"] for r in active if r["state"] == "queued"},
        "bass_builds_running": {
            (r["pipeline"],): r["n"] for r in active if r["state"] == "running"
        },
        "bass_store_size_bytes": {(): store_bytes},
        "bass_forward_queue_records": per_destination("queued"),
        "bass_forward_queue_bytes": {(): queue.bytes} if queue else {},
        "bass_forward_queue_limit_bytes": {(): queue.max_bytes} if queue else {},
        "bass_forward_records_sent_total": per_destination("sent"),
        "bass_forward_records_dropped_total": per_destination("dropped"),
        "bass_forward_requests_retried_total": per_destination("retried"),
    }


def destination(url: str) -> str:
    """A forward URL as a label: no password (`user:***@`) and no query, where a token
    may be (every reader of /metrics sees the labels)."""
    return redact_url(url).split("?", 1)[0].split("#", 1)[0]


async def metrics(request: Request) -> Response:
    body = await request.state.metrics.exposition()
    return Response(body, headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})


routes = [Route("/metrics", metrics, methods=["GET"])]
