"""Synthetic telemetry for bench/ingest_bench.py: log text, OTLP request bodies, and a
dashboard-sized store.

Everything is generated from a seeded `random.Random`, so two runs with the same sizes
produce the same data (and the same cached database).

- Log text: words drawn from a Zipf-distributed vocabulary (a few hundred words a CI
  log is made of, then a long tail of made-up identifiers, paths and numbers), so a
  full-text search meets realistic term frequencies: a handful of words in most lines,
  most words in very few.
- OTLP/JSON bodies as SDKs send them: 512 records per request, one resource, about ten
  trace ids per batch; spans with parent/child ids and a handful of attributes, log
  records with trace/span ids, severity, an attribute or two and a ~100-byte body.
  `fresh_ids` gives a body new trace ids (a plain `bytes.replace`, so JSON or
  protobuf, it stays valid) so that spans re-sent from a template are new spans.
- `build_store`: ~20 pipelines × N builds (root, checkout, pipeline node, 10–20 steps
  each, some nested) and their log lines, written through bass's own store functions.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

BATCH = 512  # records per request, as the OpenTelemetry SDKs' batch processors send
TRACES_PER_BATCH = 10

# -- words ------------------------------------------------------------------------------

_COMMON = """
the to of and in is for a on with from at by ok test tests passed build running done
info debug warning error src lib not be this that it as are was file files line using
compiling linking target make cc gcc python3 pip install installing collected packages
requirement already satisfied npm run node_modules module modules import from package
version step checkout git fetch origin main branch commit HEAD refs remote objects
receiving resolving deltas total reused cloning into workspace cache hit miss restore
saving artifact upload download bytes kb mb took seconds ms elapsed duration time started
finished exit code status success failed failure skipped warning deprecated please use
instead config configuration loaded loading reading writing wrote generated generating
output input path directory dir created removing removed cleaning clean tmp home usr bin
local share include object objects archive static shared library libraries linker flags
cflags ldflags optimization release debug mode enabled disabled true false none null
pytest collected items session starts platform linux rootdir plugins cachedir PASSED
FAILED ERROR SKIPPED xfail xpass coverage report missing stmts cover total lint ruff
mypy black format formatted unchanged would reformat checking checked found issues no
issues success check docs sphinx html pages building writing copying static assets
docker image layer pushing pulled digest sha256 tag latest container network volume
service starting stopping health healthy ready listening port http https request
response GET POST status 200 404 500 timeout retry retrying attempt connection refused
reset closed open socket address host localhost server client api endpoint url query
database migration migrations applied schema table index rows inserted updated deleted
select transaction commit rollback lock wait waiting queue job jobs worker workers
pipeline stage stages parallel unordered ordered setup teardown changeset matched
environment variable variables secret masked token key value values json yaml toml
parse parsing parsed invalid valid expected got actual assert assertion equal differ
Traceback recent call last most raise raised exception File function method class
return returned argument arguments keyword missing required optional default unknown
"""

_SYLLABLES = (
    "ab ac ad al am an ar as at ba be bi bo ca ce ci co cu da de di do du el em en er es "
    "fa fe fi fo ga ge gi go ha he hi ho il im in io ka ke ki ko la le li lo lu ma me mi "
    "mo mu na ne ni no nu ob od ol om on op or os pa pe pi po pu ra re ri ro ru sa se si "
    "so su ta te ti to tu ul um un ur us va ve vi vo za ze zi zo"
).split()
_SUFFIXES = ("", "", "", "_test", "_utils", ".py", ".c", ".h", ".js", "_v2", "s", "er", "Error")


def vocabulary(size: int = 30_000, seed: int = 7) -> list[str]:
    """Common CI words first, then a long tail of made-up identifiers, in rank order."""
    rng = random.Random(seed)
    words = list(dict.fromkeys(_COMMON.split()))
    seen = set(words)
    while len(words) < size:
        n = rng.choice((2, 2, 3, 3, 3, 4))
        word = "".join(rng.choice(_SYLLABLES) for _ in range(n)) + rng.choice(_SUFFIXES)
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


class LineMaker:
    """~100-byte log lines of Zipf-distributed words (exponent 1.1), numbers and paths."""

    def __init__(self, seed: int = 1, vocab: list[str] | None = None) -> None:
        self.rng = random.Random(seed)
        self.vocab = vocab or vocabulary()
        self.cum = list(itertools.accumulate(1 / (r + 1) ** 1.1 for r in range(len(self.vocab))))

    def probability(self, word: str) -> float:
        """Chance that one drawn word is `word`."""
        rank = self.vocab.index(word)
        return (self.cum[rank] - (self.cum[rank - 1] if rank else 0)) / self.cum[-1]

    def line(self) -> str:
        rng = self.rng
        words = rng.choices(self.vocab, cum_weights=self.cum, k=rng.randint(12, 19))
        r = rng.random()
        if r < 0.25:
            words.append(f"{rng.random() * 100:.2f}s")
        elif r < 0.4:
            words.insert(0, f"[{rng.randrange(1, 10_000):>5}/{10_000}]")
        elif r < 0.5:
            folder = rng.choice(self.vocab[400:1000]).split(".")[0]
            name = rng.choice(self.vocab[400:4000]).split(".")[0]
            words.append(f"src/{folder}/{name}.py:{rng.randrange(1, 900)}")
        return " ".join(words)

    def lines(self, n: int) -> list[str]:
        return [self.line() for _ in range(n)]


# -- OTLP/JSON bodies ---------------------------------------------------------------------


def _hex(rng: random.Random, nbytes: int) -> str:
    return rng.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex() or "1"


def _attr(key: str, value: object) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def _resource(service: str) -> dict:
    return {
        "attributes": [
            _attr("service.name", service),
            _attr("service.version", "1.4.2"),
            _attr("host.name", "ci-runner-3"),
            _attr("telemetry.sdk.name", "opentelemetry"),
            _attr("telemetry.sdk.language", "python"),
            _attr("telemetry.sdk.version", "1.45.2"),
        ]
    }


@dataclass
class Body:
    """One OTLP request: its JSON text, the trace ids in it, how many records."""

    json: bytes
    trace_ids: list[str]
    records: int


def span_body(rng: random.Random, n: int = BATCH, traces: int = TRACES_PER_BATCH) -> Body:
    """n spans of `traces` traces: per trace one root, the rest children or
    grandchildren, each with 4–6 attributes."""
    trace_ids = [_hex(rng, 16) for _ in range(traces)]
    now = time.time_ns()
    spans = []
    for i in range(n):
        t = i % traces
        trace_id = trace_ids[t]
        mine = [s for s in spans[-3 * traces :] if s["traceId"] == trace_id]
        parent = rng.choice(mine)["spanId"] if mine else ""
        start = now - rng.randrange(10**9, 10**11)
        route = rng.choice(("/api/items", "/api/items/{id}", "/login", "/search", "/health"))
        attrs = [
            _attr("http.request.method", rng.choice(("GET", "GET", "POST", "PUT"))),
            _attr("http.route", route),
            _attr("http.response.status_code", rng.choice((200, 200, 200, 201, 404, 500))),
            _attr("server.address", "api.internal"),
            _attr("code.function.name", f"handler_{rng.randrange(60)}"),
        ]
        if rng.random() < 0.3:
            attrs.append(_attr("db.system.name", "postgresql"))
        span = {
            "traceId": trace_id,
            "spanId": _hex(rng, 8),
            "name": f"{attrs[0]['value']['stringValue']} {route}",
            "kind": rng.choice((1, 2, 3)),
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + rng.randrange(10**5, 10**9)),
            "attributes": attrs,
            "status": {"code": rng.choice((0, 0, 1, 2))},
        }
        if parent:
            span["parentSpanId"] = parent
        spans.append(span)
    payload = {
        "resourceSpans": [
            {
                "resource": _resource("bench-api"),
                "scopeSpans": [
                    {
                        "scope": {
                            "name": "opentelemetry.instrumentation.flask",
                            "version": "0.66b2",
                        },
                        "spans": spans,
                    }
                ],
            }
        ]
    }
    return Body(json.dumps(payload, separators=(",", ":")).encode(), trace_ids, n)


def log_body(
    rng: random.Random, lines: LineMaker, n: int = BATCH, traces: int = TRACES_PER_BATCH
) -> Body:
    """n log records across `traces` traces (a few spans each): severity, one or two
    attributes, a ~100-byte body of varied words."""
    trace_ids = [_hex(rng, 16) for _ in range(traces)]
    span_ids = {t: [_hex(rng, 8) for _ in range(3)] for t in trace_ids}
    now = time.time_ns()
    records = []
    for i in range(n):
        trace_id = trace_ids[i * traces // n]
        severity = rng.choices((9, 13, 17, 5), weights=(85, 8, 4, 3))[0]
        attrs = [_attr("log.iostream", "stdout" if severity < 13 else "stderr")]
        if rng.random() < 0.5:
            attrs.append(_attr("code.lineno", rng.randrange(1, 2000)))
        stamp = str(now + i * 1000)
        records.append(
            {
                "timeUnixNano": stamp,
                "observedTimeUnixNano": stamp,
                "severityNumber": severity,
                "severityText": {5: "DEBUG", 9: "INFO", 13: "WARN", 17: "ERROR"}[severity],
                "body": {"stringValue": lines.line()},
                "attributes": attrs,
                "traceId": trace_id,
                "spanId": rng.choice(span_ids[trace_id]),
            }
        )
    payload = {
        "resourceLogs": [
            {
                "resource": _resource("bench-api"),
                "scopeLogs": [{"scope": {"name": "bench.logger"}, "logRecords": records}],
            }
        ]
    }
    return Body(json.dumps(payload, separators=(",", ":")).encode(), trace_ids, n)


def bodies(kind: str, count: int, seed: int = 11) -> list[Body]:
    """`count` distinct OTLP/JSON template bodies of `kind` ("traces" or "logs")."""
    rng = random.Random(seed)
    maker = LineMaker(seed + 1)
    if kind == "traces":
        return [span_body(rng) for _ in range(count)]
    return [log_body(rng, maker) for _ in range(count)]


def fresh_ids(body: bytes, trace_ids: list[str], protobuf: bool) -> bytes:
    """`body` with every one of its trace ids replaced by a new random one (the same
    length, so JSON and protobuf alike stay valid): re-sent spans become new spans."""
    for old in trace_ids:
        new = os.urandom(16)
        if protobuf:
            body = body.replace(bytes.fromhex(old), new)
        else:
            body = body.replace(old.encode(), new.hex().encode())
    return body


# -- the dashboard store -------------------------------------------------------------------

GENERATOR_VERSION = "7"  # bump when build_store's output changes: a new cache key


@dataclass
class StorePlan:
    """Sizes of the store for the query benchmark."""

    builds: int
    records: int
    pipelines: int = 20
    big_builds: int = 0  # builds with `big_lines` log lines each
    big_lines: int = 0

    @classmethod
    def sized(cls, builds: int, records: int) -> StorePlan:
        big_builds = max(1, builds // 1000)
        big_lines = min(100_000, records // 10 // big_builds)
        return cls(builds, records, 20, big_builds, big_lines)

    def key(self) -> str:
        from bass.store import schema

        text = json.dumps(
            [
                GENERATOR_VERSION,
                [name for name, *_ in schema.MIGRATIONS],
                self.builds,
                self.records,
                self.pipelines,
                self.big_builds,
                self.big_lines,
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def file_name(self) -> str:
        return f"queries-{self.builds}b-{self.records}r-{self.key()}.db"


@dataclass
class StoreInfo:
    """What build_store wrote, for choosing the queries (saved next to the database)."""

    pipelines: list[str]
    builds_per_pipeline: int
    big: list[list]  # [pipeline, number] of the builds with many lines
    search_words: dict[str, str]  # band → word ("common", "mid", "rare", "error")
    word_hits: dict[str, int]  # band → blocks of lines holding the word
    generation_seconds: float = 0.0
    records: int = 0
    spans: int = 0
    bytes: int = 0
    extra: dict = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=1))

    @classmethod
    def load(cls, path: Path) -> StoreInfo:
        return cls(**json.loads(path.read_text()))


def _pipeline_steps(rng: random.Random, name: str) -> list[tuple[str, list[str]]]:
    """A pipeline's fixed step list: (step name, child names); 10–20 spans in all."""
    pool = ["lint", "typecheck", "unit", "integration", "e2e", "docs", "package", "publish",
            "compile", "assets", "migrations", "security-scan", "coverage", "bench",
            "container", "deploy-staging", "smoke", "notify", "licenses", "sbom"]  # fmt: skip
    rng.shuffle(pool)
    total = rng.randint(10, 20)
    steps: list[tuple[str, list[str]]] = [("setup", [])]
    used = 1
    while used < total:
        step = pool.pop()
        if used + 4 <= total and rng.random() < 0.25:
            children = [f"{step}-{i}" for i in range(1, rng.randint(2, 4) + 1)]
            steps.append((step, children))
            used += 1 + len(children)
        else:
            steps.append((step, []))
            used += 1
    return steps


ERROR_LINES = (
    "Traceback (most recent call last):",
    '  File "src/app/calc.py", line 42, in divide',
    "ZeroDivisionError: division by zero",
    "FAILED tests/test_calc.py::test_divide - ZeroDivisionError",
    "error: linker command failed with exit code 1 (use -v to see invocation)",
)
PIPELINE_NAMES = (
    "api-service", "web-app", "billing-lib", "auth-jobs", "search-service", "mobile-app",
    "infra-lib", "docs-jobs", "etl-service", "ml-app", "gateway-lib", "payments-jobs",
    "notify-service", "reports-app", "admin-lib", "cli-jobs", "sdk-service", "storage-app",
    "metrics-lib", "scheduler-jobs",
)  # fmt: skip


def _lines_per_build(rng: random.Random, plan: StorePlan, builds: int) -> tuple[list[int], set]:
    """Log lines of each build (a few big ones, the rest around the mean, ±60 %), exactly
    plan.records in all; and the indexes of the big builds."""
    big = set(rng.sample(range(builds), plan.big_builds))
    rest = plan.records - plan.big_builds * plan.big_lines
    mean = rest / max(1, builds - plan.big_builds)
    raw = [rng.uniform(0.4, 1.6) * mean for _ in range(builds)]
    scale = rest / max(1.0, sum(r for i, r in enumerate(raw) if i not in big))
    counts = [plan.big_lines if i in big else max(20, int(r * scale)) for i, r in enumerate(raw)]
    last = max(i for i in range(builds) if i not in big)
    counts[last] += plan.records - sum(counts)
    return counts, big


class _Trace:
    """One build's spans as the builder and the worker report them."""

    def __init__(self, job: dict, resource: str) -> None:
        self.job = job
        self.resource = resource
        self.spans: list[dict] = []

    def add(self, span_id: str, parent: str, name: str, start: int, end: int, status: str,
            attributes: dict) -> None:  # fmt: skip
        self.spans.append(
            {
                "trace_id": self.job["trace_id"],
                "span_id": span_id,
                "parent_span_id": parent,
                "name": name,
                "kind": 1,
                "start_ns": start,
                "end_ns": end,
                "status_code": {"ok": 1, "skipped": 0}.get(status, 2),
                "status_message": "" if status in ("ok", "skipped") else "exit code 1",
                "bass_status": status,
                "service_name": f"bass:pipeline:{self.job['pipeline']}",
                "attributes": json.dumps(attributes),
                "events": "[]",
                "links": "[]",
                "resource": self.resource,
                "scope": "bass_builder",
            }
        )


def _build_telemetry(
    rng: random.Random, job: dict, layout: list[tuple[str, list[str]]], lines: int,
    pool: list[str],
) -> tuple[list[dict], list[tuple], str, float]:  # fmt: skip
    """(spans, log rows, final status, end time) of one build: root → checkout and the
    pipeline node → its steps (one in eight builds fails a step; later steps skipped)."""
    from bass.ingest.otlp_json import resource_json

    pipeline, trace_id, root = job["pipeline"], job["trace_id"], job["root_span_id"]
    trace = _Trace(job, resource_json({"service.name": f"bass:pipeline:{pipeline}"}))
    start = int(job["queued_at"] * 1e9) + rng.randrange(1, 20) * 10**9
    failed_at = rng.randrange(len(layout)) if rng.random() < 0.12 else None
    checkout = _hex(rng, 8)
    took = rng.randrange(1, 8) * 10**9
    trace.add(checkout, root, "checkout", start, start + took, "ok", {"bass.status": "ok"})
    t = start + took
    node, node_start = _hex(rng, 8), t
    ran: list[str] = []  # spans that print
    final = "ok"
    for s, (name, children) in enumerate(layout):
        status = "ok"
        if failed_at is not None and s >= failed_at:
            status = "failed" if s == failed_at else "skipped"
        span_id = _hex(rng, 8)
        took = 0 if status == "skipped" else rng.randrange(1, 90) * 10**8 * (1 + len(children))
        attrs: dict = {"bass.status": status, "process.command_args": ["make", name]}
        if status == "skipped":
            attrs = {"bass.status": status, "bass.skip_reason": "an earlier step failed"}
        elif status == "failed":
            attrs["process.exit.code"] = 1
            final = "failed"
        trace.add(span_id, node, name, t, t + took, status, attrs)
        if status != "skipped":
            ran.append(span_id)
        for c, child in enumerate(children):
            child_id, part = _hex(rng, 8), took // len(children)
            trace.add(child_id, span_id, child, t + c * part, t + (c + 1) * part, status,
                      {"bass.status": status})  # fmt: skip
            if status != "skipped":
                ran.append(child_id)
        t += took
    trace.add(node, root, pipeline, node_start, t, final, {"bass.status": final})
    trace.add(root, "", pipeline, start, t + 10**8, final, {"bass.status": final})

    # A few lines on the root (the entry's own output) and on checkout, the rest spread
    # over the steps that ran; a failed build ends with a traceback.
    targets = ([root] * 3 + [checkout] * 5)[:lines]
    rest = lines - len(targets)
    for i, span_id in enumerate(ran):
        targets += [span_id] * (rest // len(ran) + (1 if i < rest % len(ran) else 0))
    texts = rng.choices(pool, k=len(targets))
    if final == "failed" and len(texts) >= len(ERROR_LINES):
        texts[-len(ERROR_LINES) :] = ERROR_LINES
    rows = []
    stamp = start
    for span_id, text in zip(targets, texts, strict=True):
        stamp += 1_000_000
        severity = 9 if rng.random() < 0.93 else 13
        rows.append(
            (
                trace_id,
                span_id,
                stamp,
                severity,
                "INFO" if severity == 9 else "WARN",
                text,
                '{"log.iostream":"stdout"}' if severity == 9 else '{"log.iostream":"stderr"}',
                trace.resource,
            )
        )
    return trace.spans, rows, final, t / 1e9


def build_store(
    path: Path,
    plan: StorePlan,
    progress: Callable[[str], None] = lambda _: None,
    seed: int = 5,
) -> StoreInfo:
    """Write `plan.builds` finished builds and `plan.records` log lines into a new
    SQLite file at `path`, through bass's store: `builds.enqueue`/`builds.finish` in large
    synced transactions, spans with `telemetry.insert_spans` and log lines with
    `logs.insert_logs` in requests of 512 through `Database.submit` (the
    receiver's own group-commit path, so the full-text index grows as it does in use)."""
    from bass.store import builds as build_rows
    from bass.store import logs, telemetry
    from bass.store.db import Database

    started = time.monotonic()
    rng = random.Random(seed)
    maker = LineMaker(seed + 1)
    names = list(PIPELINE_NAMES[: plan.pipelines])
    layouts = {name: _pipeline_steps(rng, name) for name in names}
    per_pipeline = plan.builds // plan.pipelines
    total = per_pipeline * plan.pipelines
    counts, big = _lines_per_build(rng, plan, total)
    # Lines are drawn from a pool (generating 10M lines one by one would take longer
    # than storing them); CI logs repeat lines a lot, and the term frequencies are the
    # vocabulary's either way.
    pool = maker.lines(min(plan.records, 1 << 18))

    db = Database(path)
    now = time.time()
    first_at = now - 60 * 86400  # builds over the last 60 days, oldest first, pipelines
    # taking turns

    def enqueue(conn, indexes: range) -> list[dict]:
        out = []
        for i in indexes:
            name = names[i % plan.pipelines]
            config = {"repository": f"https://git.example.com/team/{name}.git",
                      "exec": ["python3", "job.py"]}  # fmt: skip
            out.append(
                build_rows.enqueue(
                    conn,
                    pipeline=name,
                    config=config,
                    trigger=rng.choice(("webhook", "webhook", "webhook", "dashboard", "cli")),
                    trace_id=_hex(rng, 16),
                    root_span_id=_hex(rng, 8),
                    now=first_at + i * (now - first_at) / total,
                    changed_refs=[_hex(rng, 20)],
                )
            )
        return out

    progress(f"queueing {total:,} builds")
    builds: list[dict] = []
    for i in range(0, total, 1000):
        builds += db.write(enqueue, range(i, min(total, i + 1000)))

    pending: list[Future] = []

    def submit(fn: Callable, rows: list) -> None:
        pending.append(db.submit(fn, rows))
        if len(pending) >= 128:  # well below Database.MAX_PENDING
            for future in pending[:64]:
                future.result()
            del pending[:64]

    endings: list[tuple[int, str, float]] = []
    spans_total = lines_done = 0
    reported = time.monotonic()
    for b, job in enumerate(builds):
        spans, rows, final, ended = _build_telemetry(
            rng, job, layouts[job["pipeline"]], counts[b], pool
        )
        submit(telemetry.insert_spans, spans)
        for i in range(0, len(rows), BATCH):
            submit(logs.insert_logs, rows[i : i + BATCH])
        endings.append((job["id"], final, ended))
        spans_total += len(spans)
        lines_done += len(rows)
        if time.monotonic() - reported > 15:
            reported = time.monotonic()
            progress(
                f"{b + 1:,}/{total:,} builds, {lines_done:,} log lines "
                f"({time.monotonic() - started:.0f} s)"
            )
    for future in pending:
        future.result()

    def finish(conn, chunk: list[tuple[int, str, float]]) -> None:
        for job_id, state, at in chunk:
            message = "a step failed" if state == "failed" else None
            build_rows.finish(conn, job_id, status=state, now=at, message=message)

    for i in range(0, len(endings), 2000):
        db.write(finish, endings[i : i + 2000])
    db.checkpoint()
    db.close()

    # Search words: common ones (in ~20 % and ~5 % of lines), a middling one (~0.5 %), a
    # rare one (~0.005 %), and a word of the failed builds' tracebacks.
    bands = {}
    candidates = [w for w in maker.vocab[:5000] if w.isalpha() and w.islower() and len(w) > 3]
    for band, share in (("common", 0.2), ("common2", 0.05), ("mid", 0.005), ("rare", 0.00005)):
        bands[band] = min(candidates, key=lambda w: abs(maker.probability(w) * 15 - share))
    bands["error"] = "ZeroDivisionError"
    conn = sqlite3.connect(path)
    try:  # blocks of lines holding each word, counted by the full-text index itself
        hits = {
            band: conn.execute(
                "SELECT COUNT(*) FROM log_text WHERE log_text MATCH ?", (f'"{word}"',)
            ).fetchone()[0]
            for band, word in bands.items()
        }
    finally:
        conn.close()
    return StoreInfo(
        pipelines=names,
        builds_per_pipeline=per_pipeline,
        big=[[builds[i]["pipeline"], builds[i]["number"]] for i in sorted(big)],
        search_words=bands,
        word_hits=hits,
        generation_seconds=time.monotonic() - started,
        records=sum(counts),
        spans=spans_total,
        bytes=path.stat().st_size,
    )
