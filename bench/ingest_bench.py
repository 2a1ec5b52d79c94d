"""Ingest and query benchmarks of `bass serve`: OTLP throughput, memory, dashboard queries.

    python -m bench.ingest_bench [--quick] [--only throughput,rss,queries] [--repeat N]
                                 [--requests N] [--clients 1,4,16] [--rss-gb G]
                                 [--builds N] [--records N] [--queries N]
                                 [--cache-dir DIR]

Run from the repository root with the Python that has bass installed. Every part
prints a Markdown table: what was measured (median [min–max] over the repetitions), the
peer or floor it is compared with, measured in the same run, the ratio, the issue's
target, PASS or MISS. Load comes from client processes (bench/otlp_client.py), never
from threads of this process: each client holds one keep-alive connection, builds all
its requests before the start signal, sends them one after another and times each.

(1) throughput  spans/s and log records/s into a running ``bass serve`` (a fresh temp
                dir, ``{}`` pipelines file and ``--db`` for every measurement), OTLP/JSON
                and OTLP/protobuf, requests of 512 records as SDKs send them (spans with
                parent/child ids and 5–6 attributes; log records with trace/span ids,
                severity, one or two attributes and a ~100-byte body of varied words;
                about ten trace ids per request; protobuf made from the same JSON by
                ``bass.ingest.forward.json_to_protobuf``), from 1, 4 and 16 clients;
                records/s = records answered 200 / (first client's start → last
                client's end). Floor, in the same run: this process decoding the same
                bodies (``otlp_json``/``otlp_proto.decode_*``) and writing them with
                ``Database.submit(telemetry.insert_*, rows).result()`` on a fresh file,
                one after another, no HTTP.
                Targets: HTTP ≥ 0.7× the floor with 4 clients; p99 request latency
                with 16 clients ≤ 10× p50.
(2) rss         peak resident memory of the ``bass serve`` process (VmHWM, and VmRSS
                polled every 100 ms) while 4 clients stream ``--rss-gb`` GB of OTLP/JSON
                logs into it. Target: under 200 MB.
(3) queries     dashboard queries on a store of ``--builds`` builds and ``--records``
                log records (20 pipelines; each build a root span, checkout, the
                pipeline node and 10–20 step spans; ~1,000 lines a build of Zipf-
                distributed words; a few builds of 100,000 lines), built once through
                bass's store functions and cached under ``--cache-dir`` keyed by the
                schema's migrations and the sizes. A client process sends ``--queries``
                requests of every kind per round (varied builds), keep-alive; p50, p95
                and max. Peer: the same store calls in this process on the same file,
                no HTTP or rendering; and ``GET /healthz``, the HTTP floor.
                Target: p95 ≤ 50 ms for every kind.

Correctness, checked in every part: the records stored equal the records answered 200
(COUNT(*) in the store), and no answer other than 200, or 503 (retried after its
Retry-After and counted); every query answers 200. A failed check makes the exit code 1;
a missed target is reported in the table, not in the exit code.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench.common import (
    REPO,
    Failures,
    Samples,
    bass_serve_on,
    child_env,
    count,
    http_get,
    megabytes,
    per_second,
    percentile,
    plural,
    print_grid,
    print_machine,
    print_table,
    proc_cpu_seconds,
    proc_memory,
    row,
)
from bench.ingest_data import BATCH, StoreInfo, StorePlan, bodies, build_store, fresh_ids

# The targets.
HTTP_VS_FLOOR = 0.7  # records/s over HTTP with 4 clients ≥ 0.7 × decode + insert in-process
TARGET_CLIENTS = 4
P99_OVER_P50 = 10.0  # with 16 clients
LATENCY_CLIENTS = 16
RSS_LIMIT = 200e6  # bytes
QUERY_P95 = 0.050  # seconds

TEMPLATES = 16  # distinct request bodies per kind (clients give them fresh trace ids)
PATHS = {"traces": "/v1/traces", "logs": "/v1/logs"}
CONTENT_TYPES = {"json": "application/json", "protobuf": "application/x-protobuf"}
RECORD_NAMES = {"traces": "spans", "logs": "log records"}
FORMAT_NAMES = {"json": "OTLP/JSON", "protobuf": "OTLP/protobuf"}


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 0.1 else f"{value * 1000:.0f} ms"


def read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)


def stored_count(db: Path, kind: str) -> int:
    conn = read_only(db)
    try:
        if kind == "traces":
            return conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
        return conn.execute("SELECT COALESCE(SUM(n), 0) FROM log_blocks").fetchone()[0]
    finally:
        conn.close()


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# -- client processes --------------------------------------------------------------------


@dataclass
class Load:
    """What a set of clients did: their results merged."""

    results: list[dict[str, Any]]

    @property
    def wall(self) -> float:
        return max(r["end"] for r in self.results) - min(r["start"] for r in self.results)

    @property
    def records(self) -> int:
        return sum(r["records"] for r in self.results)

    @property
    def bytes(self) -> int:
        return sum(r["bytes"] for r in self.results)

    @property
    def latencies(self) -> list[float]:
        return [x for r in self.results for x in r["latencies"]]

    @property
    def retries(self) -> int:
        return sum(r["retries"] for r in self.results)

    @property
    def cpu(self) -> float:
        return sum(r["cpu"] for r in self.results)

    def answers(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            for status, n in r["answers"].items():
                out[status] = out.get(status, 0) + n
        return out

    def errors(self) -> list[str]:
        return [e for r in self.results for e in r["errors"]]


def start_clients(spec: Path, port: int, amounts: list[int]) -> list[subprocess.Popen]:
    """One client process per amount (requests, or bytes to send), each ready to go."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.otlp_client",
                "send",
                str(spec),
                str(i),
                str(port),
                str(n),
            ],
            cwd=REPO,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        for i, n in enumerate(amounts)
    ]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != b"ready":
            for p in procs:
                p.kill()
            raise RuntimeError(f"a client did not get ready (said {line!r})")
    return procs


def go(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()


def collect(procs: list[subprocess.Popen]) -> Load:
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"a client exited {proc.returncode}")
        results.append(json.loads(out))
    return Load(results)


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def write_spec(path: Path, kind: str, fmt: str, templates: list[tuple[bytes, list[str]]],
               fresh: bool) -> Path:  # fmt: skip
    spec = {
        "path": PATHS[kind],
        "content_type": CONTENT_TYPES[fmt],
        "templates": templates,
        "protobuf": fmt == "protobuf",
        "records": BATCH,
        "fresh": fresh,
    }
    path.write_bytes(pickle.dumps(spec))
    return path


def encoded_templates(kind: str, fmt: str, count_: int) -> list[tuple[bytes, list[str]]]:
    from bass.ingest.forward import json_to_protobuf

    out = []
    for body in bodies(kind, count_):
        data = json_to_protobuf(kind, body.json) if fmt == "protobuf" else body.json
        out.append((data, body.trace_ids))
    return out


def send_one(url: str, kind: str, fmt: str, body: bytes) -> None:
    """One untimed request (the server's first request pays for lazy imports)."""
    import urllib.request

    request = urllib.request.Request(
        url + PATHS[kind], data=body, headers={"Content-Type": CONTENT_TYPES[fmt]}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


# -- (1) throughput --------------------------------------------------------------------


@dataclass
class HttpRun:
    rate: float
    p50: float
    p99: float
    retries: int
    server_cpu: float
    client_cpu: float
    records: int
    bytes: int


def http_run(
    tmp: Path, name: str, kind: str, fmt: str, spec: Path, templates: list, clients: int,
    requests: int, failures: Failures,
) -> HttpRun:  # fmt: skip
    home = tmp / name
    with bass_serve_on(home) as serve:
        warm, ids = templates[-1]
        send_one(serve.url, kind, fmt, fresh_ids(warm, ids, fmt == "protobuf"))
        port = int(serve.url.rsplit(":", 1)[1])
        procs = start_clients(spec, port, split(requests, clients))
        cpu_before = proc_cpu_seconds(serve.proc.pid)
        go(procs)
        load = collect(procs)
        server_cpu = proc_cpu_seconds(serve.proc.pid) - cpu_before
        stored = stored_count(serve.db, kind)
    shutil.rmtree(home, ignore_errors=True)
    where = f"(1) {name}"
    expected = load.records + BATCH
    failures.check(
        stored == expected, f"{where}: {stored:,} {RECORD_NAMES[kind]} stored, {expected:,} sent"
    )
    other = {s: n for s, n in load.answers().items() if s not in ("200", "503")}
    failures.check(not other, f"{where}: answers {other}: {load.errors()[:3]}")
    latencies = load.latencies
    return HttpRun(
        rate=load.records / load.wall,
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
        retries=load.retries,
        server_cpu=server_cpu,
        client_cpu=load.cpu,
        records=load.records,
        bytes=load.bytes,
    )


def floor_run(tmp: Path, kind: str, fmt: str, templates: list, requests: int,
              failures: Failures) -> float:  # fmt: skip
    """Records per second of decode + insert in this process, no HTTP, same bodies."""
    from bass.ingest import otlp_json, otlp_proto
    from bass.store import logs, telemetry
    from bass.store.db import Database

    module = otlp_proto if fmt == "protobuf" else otlp_json
    decode = module.decode_traces if kind == "traces" else module.decode_logs
    insert = telemetry.insert_spans if kind == "traces" else logs.insert_logs
    protobuf = fmt == "protobuf"
    prepared = [
        fresh_ids(*templates[(i * 7) % len(templates)], protobuf) for i in range(requests + 1)
    ]
    path = tmp / "floor.db"
    remove_db(path)
    db = Database(path)
    try:

        def one(body: bytes) -> None:
            decoded = decode(body)
            db.submit(insert, decoded.spans if kind == "traces" else decoded.logs).result()

        one(prepared[0])  # untimed, like the server's warm-up request
        started = time.perf_counter()
        for body in prepared[1:]:
            one(body)
        elapsed = time.perf_counter() - started
    finally:
        db.close()
    stored = stored_count(path, kind)
    remove_db(path)
    failures.check(
        stored == (requests + 1) * BATCH,
        f"(1) floor {kind} {fmt}: {stored:,} stored, {(requests + 1) * BATCH:,} written",
    )
    return requests * BATCH / elapsed


def bench_throughput(args: argparse.Namespace, tmp: Path, failures: Failures) -> None:
    kinds = ("traces", "logs")
    formats = ("json", "protobuf")
    templates = {}
    specs = {}
    for kind in kinds:
        for fmt in formats:
            templates[kind, fmt] = encoded_templates(kind, fmt, TEMPLATES)
            specs[kind, fmt] = write_spec(
                tmp / f"spec-{kind}-{fmt}.pickle", kind, fmt, templates[kind, fmt], fresh=True
            )
    floors: dict[tuple[str, str], list[float]] = {k: [] for k in templates}
    runs: dict[tuple[str, str, int], list[HttpRun]] = {}
    for rep in range(args.repeat_1):
        for kind in kinds:
            for fmt in formats:
                floors[kind, fmt].append(
                    floor_run(tmp, kind, fmt, templates[kind, fmt], args.requests, failures)
                )
                for clients in args.client_counts:
                    name = f"serve-{kind}-{fmt}-{clients}-{rep}"
                    runs.setdefault((kind, fmt, clients), []).append(
                        http_run(tmp, name, kind, fmt, specs[kind, fmt], templates[kind, fmt],
                                 clients, args.requests, failures)
                    )  # fmt: skip
        print(f"(throughput: repetition {rep + 1} of {args.repeat_1} done)", flush=True)

    for kind in kinds:
        rows = []
        notes = []
        for fmt in formats:
            floor = Samples(floors[kind, fmt])
            for clients in args.client_counts:
                rate = Samples([r.rate for r in runs[kind, fmt, clients]])
                judged = clients == TARGET_CLIENTS
                rows.append(
                    row(
                        f"{FORMAT_NAMES[fmt]}, {plural(clients, 'client')}: "
                        f"{RECORD_NAMES[kind]}/s over HTTP",
                        rate.show(per_second),
                        f"floor {floor.show(per_second)}",
                        rate.median / floor.median,
                        f"≥ {HTTP_VS_FLOOR}× floor" if judged else "—",
                        rate.median / floor.median >= HTTP_VS_FLOOR if judged else None,
                    )
                )
            for clients in args.client_counts:
                these = runs[kind, fmt, clients]
                p50 = Samples([r.p50 for r in these])
                p99 = Samples([r.p99 for r in these])
                ratio = Samples([r.p99 / r.p50 for r in these])
                judged = clients == LATENCY_CLIENTS
                rows.append(
                    row(
                        f"{FORMAT_NAMES[fmt]}, {plural(clients, 'client')}: request latency p99",
                        p99.show(ms),
                        f"p50 {p50.show(ms)}",
                        ratio.median,
                        f"≤ {P99_OVER_P50:g}× p50" if judged else "—",
                        ratio.median <= P99_OVER_P50 if judged else None,
                    )
                )
            every = [r for c in args.client_counts for r in runs[kind, fmt, c]]
            per_record = Samples([r.bytes / r.records for r in every]).median
            server_cpu = Samples([r.server_cpu / r.records * 1e6 for r in every])
            client_share = Samples([r.client_cpu / r.server_cpu for r in every])
            notes.append(
                f"{FORMAT_NAMES[fmt]}: {per_record:.0f} bytes a record; bass serve used "
                f"{server_cpu.show(lambda v: f'{v:.0f} µs')} CPU a record; the clients "
                f"together {client_share.show(lambda v: f'{v * 100:.0f} %')} of the "
                f"server's CPU; 503 retries: {sum(r.retries for r in every)}"
            )
        per_run = args.requests * BATCH
        notes += [
            f"every run: {args.requests} requests of {BATCH} {RECORD_NAMES[kind]} "
            f"({count(per_run)} in all, split evenly between the clients) into a fresh bass "
            "serve, after one untimed request; each client holds one keep-alive connection "
            "and sends its requests one after another; records/s = records answered 200 / "
            "(first client's start → last client's end)",
            "the ratio column of a latency row is p99 / p50 (the median over repetitions "
            "of each run's ratio)",
            f"floor: {count(per_run)} {RECORD_NAMES[kind]}, the same bodies, decoded "
            "(`otlp_json`/`otlp_proto.decode_"
            f"{kind}`) then written with `Database.submit(telemetry.insert_"
            f"{'spans' if kind == 'traces' else 'logs'}, rows).result()` one request "
            "after another, in this process, on a fresh file",
            f"stored = sent in every run (COUNT(*) of the store, plus the warm-up request): "
            f"{'yes' if not any(kind in f for f in failures.items) else 'NO, see below'}",
        ]
        print_table(
            f"(1) throughput: {RECORD_NAMES[kind]} into bass serve, "
            f"{plural(args.repeat_1, 'repetition')}",
            rows,
            notes,
        )


# -- (2) resident memory -----------------------------------------------------------------


def bench_rss(args: argparse.Namespace, tmp: Path, failures: Failures) -> None:
    kind, fmt, clients = "logs", "json", 4
    templates = encoded_templates(kind, fmt, TEMPLATES)
    spec = write_spec(tmp / "spec-rss.pickle", kind, fmt, templates, fresh=False)
    total = int(args.rss_gb * 1e9)
    home = tmp / "serve-rss"
    samples: list[tuple[float, int]] = []
    with bass_serve_on(home) as serve:
        pid = serve.proc.pid
        send_one(serve.url, kind, fmt, templates[0][0])
        idle = proc_memory(pid)
        port = int(serve.url.rsplit(":", 1)[1])
        procs = start_clients(spec, port, split(total, clients))
        go(procs)
        started = time.monotonic()
        # The clients' results are read while they run: a result bigger than a pipe's
        # buffer would otherwise block its client and this loop forever.
        with ThreadPoolExecutor(len(procs)) as pool:
            collected = pool.submit(collect, procs)
            while not collected.done():
                samples.append((time.monotonic() - started, proc_memory(pid)["VmRSS"]))
                time.sleep(0.1)
        load = collected.result()
        memory = proc_memory(pid)
        status = json.loads(http_get(serve.url + "/api/status"))
        stored = stored_count(serve.db, kind)
        db_bytes = status["store"]["bytes"]
    shutil.rmtree(home, ignore_errors=True)
    expected = load.records + BATCH
    failures.check(stored == expected, f"(2) {stored:,} log records stored, {expected:,} sent")
    other = {s: n for s, n in load.answers().items() if s not in ("200", "503")}
    failures.check(not other, f"(2) answers {other}: {load.errors()[:3]}")
    peak = max(memory["VmHWM"], max((s[1] for s in samples), default=0))
    late = [s[1] for s in samples if s[0] > load.wall / 2]
    rows = [
        row(
            "peak RSS of bass serve (VmHWM)",
            megabytes(peak),
            f"idle after one request {megabytes(idle['VmRSS'])}",
            peak / idle["VmRSS"],
            f"< {RSS_LIMIT / 1e6:.0f} MB",
            peak < RSS_LIMIT,
        ),
        row(
            "RSS over the second half of the stream: median, max",
            f"{megabytes(Samples(late).median)}, {megabytes(max(late))}" if late else "—",
        ),
        row("RSS at the end", megabytes(memory["VmRSS"])),
        row(
            "OTLP/JSON sent (answered 200)",
            f"{load.bytes / 1e9:.2f} GB in {load.wall:.0f} s",
            ratio=None,
        ),
        row(
            "rate",
            f"{per_second(load.records / load.wall)} records, "
            f"{load.bytes / load.wall / 1e6:.1f} MB/s",
        ),
        row("log records stored", f"{count(stored)} of {count(expected)} sent"),
    ]
    print_table(
        f"(2) memory: {args.rss_gb:g} GB of OTLP/JSON logs from {clients} clients into one "
        "bass serve",
        rows,
        [
            f"{TEMPLATES} distinct request bodies of {BATCH} records "
            f"({load.bytes / load.records:.0f} bytes a record), each client cycling through "
            "them until its quarter of the bytes is sent, one keep-alive connection each",
            f"RSS polled every 100 ms from /proc/{pid}/status ({len(samples)} samples); "
            "VmHWM is the kernel's own peak",
            f"store at the end: {megabytes(db_bytes)} (database file and WAL); 503 retries: "
            f"{load.retries}; request latency p50 {ms(percentile(load.latencies, 50))}, "
            f"p99 {ms(percentile(load.latencies, 99))}",
        ],
    )


# -- (3) dashboard queries -----------------------------------------------------------------


def cached_store(args: argparse.Namespace) -> tuple[Path, StoreInfo, bool]:
    """The store for the query benchmark: from the cache, or generated into it."""
    plan = StorePlan.sized(args.builds, args.records)
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / plan.file_name()
    info_path = path.with_suffix(".json")
    if path.exists() and info_path.exists():
        return path, StoreInfo.load(info_path), True
    partial = path.with_suffix(".partial")
    remove_db(partial)

    def progress(message: str) -> None:
        print(f"(queries: generating the store: {message})", flush=True)

    info = build_store(partial, plan, progress)
    partial.rename(path)
    info.save(info_path)
    return path, info, False


def read_through(path: Path) -> float:
    """Read a file once (so the OS caches it, as a server's busy database would be);
    the seconds it took."""
    started = time.monotonic()
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 22):
            pass
    return time.monotonic() - started


def dict_rows(cursor: sqlite3.Cursor, values: tuple) -> dict[str, Any]:
    return {col[0]: value for col, value in zip(cursor.description, values, strict=True)}


@dataclass
class Query:
    kind: str
    path: str
    store: Any  # callable(conn): the store calls the route makes


KINDS = [
    # (kind, what the table calls it)
    ("list-page", "build list page `GET /pipelines/NAME`"),
    ("list-api", "build list `GET /api/pipelines/NAME/builds`"),
    ("tree", "span tree `GET /api/pipelines/NAME/builds/N`"),
    ("logs-tail", "page of logs `…/builds/N/logs?tail=1&limit=200`"),
    ("logs-span", "one step's logs `…/logs?tail=1&limit=200&span=ID`"),
    ("search-build", "search in a build `…/logs?q=WORD&limit=200`"),
    ("search-build-2", "search in a build, two words `?q=W1+W2`"),
    ("search-rare", "search across builds, rare word `GET /api/search?q=W`"),
    ("search-common", "search across builds, common word"),
    ("search-two", "search across builds, two words"),
    ("search-pipeline", "search across one pipeline's builds `&pipeline=NAME`"),
    ("page", "build page `GET /pipelines/NAME/N`"),
    ("big-page", "build page, a build of BIG lines"),
    ("big-tail", "page of logs, a build of BIG lines"),
    ("big-span", "one step's logs, a build of BIG lines"),
    ("big-search", "search in a build of BIG lines"),
    ("healthz", "`GET /healthz` (the HTTP floor)"),
]


def plan_queries(db: Path, info: StoreInfo, per_kind: int, seed: int) -> list[Query]:
    """`per_kind` requests of every kind over varied builds, kinds interleaved."""
    from bass.store import builds, logs, telemetry
    from bass.ui import builds as build_pages

    rng = random.Random(seed)
    words = info.search_words
    conn = read_only(db)
    conn.row_factory = dict_rows
    big = {tuple(b) for b in info.big}

    def pick_build(big_one: bool) -> tuple[str, int, str, str]:
        """(pipeline, number, trace id, a step span id with logs) of a random build."""
        while True:
            if big_one:
                name, number = rng.choice(info.big)
            else:
                name = rng.choice(info.pipelines)
                number = rng.randrange(1, info.builds_per_pipeline + 1)
                if (name, number) in big:
                    continue
            trace_id = conn.execute(
                "SELECT trace_id FROM builds WHERE pipeline = ? AND number = ?", (name, number)
            ).fetchone()["trace_id"]
            spans = [
                r["span_id"]
                for r in conn.execute(
                    "SELECT span_id FROM spans WHERE trace_id = ? AND name NOT IN "
                    "('checkout') AND parent_span_id != ''",
                    (trace_id,),
                )
            ]
            with_logs = [s for s in spans if conn.execute(
                "SELECT 1 FROM log_blocks WHERE trace_id = ? AND span_id = ? LIMIT 1", (trace_id, s)
            ).fetchone()]  # fmt: skip
            return name, number, trace_id, rng.choice(with_logs or spans)

    def logs_query(name, number, **kw):
        def call(c):
            found = builds.by_number(c, name, number)
            return logs.logs_of(c, found["trace_id"], **kw)

        return call

    def build_query(kind: str) -> Query:
        big_one = kind.startswith("big-")
        name, number, _, span = pick_build(big_one)
        base = f"/api/pipelines/{name}/builds/{number}"
        if kind == "list-page":

            def call(c):  # noqa: E306
                rows = builds.for_pipeline(c, name, limit=30)
                return telemetry.spans_of_traces(c, [b["trace_id"] for b in rows])

            return Query(kind, f"/pipelines/{name}", call)
        if kind == "list-api":
            return Query(kind, f"/api/pipelines/{name}/builds",
                         lambda c: builds.for_pipeline(c, name, limit=50))  # fmt: skip
        if kind == "tree":
            return Query(kind, base, lambda c: telemetry.spans_of(
                c, builds.by_number(c, name, number)["trace_id"]))  # fmt: skip
        if kind in ("logs-tail", "big-tail"):
            return Query(kind, f"{base}/logs?tail=1&limit=200",
                         logs_query(name, number, tail=True, limit=200))  # fmt: skip
        if kind in ("logs-span", "big-span"):
            return Query(kind, f"{base}/logs?tail=1&limit=200&span={span}",
                         logs_query(name, number, tail=True, limit=200, span_id=span))  # fmt: skip
        if kind in ("search-build", "big-search"):
            word = words["error"] if rng.random() < 0.2 else words[rng.choice(("common", "mid"))]
            return Query(kind, f"{base}/logs?q={quote(word)}&limit=200",
                         logs_query(name, number, search=word, limit=200))  # fmt: skip
        if kind == "search-build-2":
            text = f"{words['common']} {words['common2']}"
            return Query(kind, f"{base}/logs?q={quote(text)}&limit=200",
                         logs_query(name, number, search=text, limit=200))  # fmt: skip
        if kind.startswith("search-"):
            text = {
                "search-rare": words["rare"],
                "search-common": words["common"],
                "search-two": f"{words['common']} {words['mid']}",
                "search-pipeline": words["mid"],
            }[kind]
            only = name if kind == "search-pipeline" else None
            path = f"/api/search?q={quote(text)}" + (f"&pipeline={name}" if only else "")
            return Query(kind, path, lambda c: logs.search_logs(c, text, pipeline=only))
        if kind in ("page", "big-page"):
            return Query(kind, f"/pipelines/{name}/{number}",
                         lambda c: build_pages._load_build(c, name, number))  # fmt: skip
        return Query(kind, "/healthz", lambda c: None)

    try:
        rounds = [[build_query(kind) for kind, _ in KINDS] for _ in range(per_kind)]
    finally:
        conn.close()
    return [q for r in rounds for q in r]


def store_times(db: Path, queries: list[Query]) -> dict[str, list[float]]:
    """Seconds of each query's store calls in this process (a read-only connection,
    one snapshot, as `Database.read` runs them)."""
    conn = read_only(db)
    conn.row_factory = dict_rows
    conn.execute("PRAGMA busy_timeout=10000")
    out: dict[str, list[float]] = {}
    try:
        for q in queries[: len(KINDS)]:  # warm-up
            conn.execute("BEGIN")
            q.store(conn)
            conn.execute("COMMIT")
        for q in queries:
            started = time.perf_counter()
            conn.execute("BEGIN")
            q.store(conn)
            conn.execute("COMMIT")
            out.setdefault(q.kind, []).append(time.perf_counter() - started)
    finally:
        conn.close()
    return out


def bench_queries(args: argparse.Namespace, tmp: Path, failures: Failures) -> None:
    prepared = time.monotonic()
    db, info, cached = cached_store(args)
    prepare_seconds = time.monotonic() - prepared
    pipelines = {
        name: {"repository": f"https://git.example.com/team/{name}.git",
               "exec": ["python3", "job.py"]}
        for name in info.pipelines
    }  # fmt: skip
    warm_seconds = read_through(db)
    http: dict[str, list[dict[str, float]]] = {kind: [] for kind, _ in KINDS}
    store: dict[str, list[dict[str, float]]] = {kind: [] for kind, _ in KINDS}
    sizes: dict[str, list[float]] = {kind: [] for kind, _ in KINDS}
    server_cpu = client_cpu = 0.0
    for r in range(args.repeat_3):
        queries = plan_queries(db, info, args.queries, seed=100 + r)
        spec = tmp / "queries.json"
        spec.write_text(json.dumps({
            "port": 0,  # set below
            "warmup": [[q.kind, q.path] for q in queries[: 2 * len(KINDS)]],
            "requests": [[q.kind, q.path] for q in queries],
        }))  # fmt: skip
        with bass_serve_on(tmp / "serve-queries", db=db, pipelines=pipelines) as serve:
            data = json.loads(spec.read_text())
            data["port"] = int(serve.url.rsplit(":", 1)[1])
            spec.write_text(json.dumps(data))
            before = proc_cpu_seconds(serve.proc.pid)
            proc = subprocess.run(
                [sys.executable, "-m", "bench.otlp_client", "get", str(spec)],
                cwd=REPO, env=child_env(), capture_output=True, check=True,
            )  # fmt: skip
            server_cpu += proc_cpu_seconds(serve.proc.pid) - before
        result = json.loads(proc.stdout)
        client_cpu += result["cpu"]
        for kind, answers in result["answers"].items():
            bad = {s: n for s, n in answers.items() if s != "200"}
            failures.check(not bad, f"(3) {kind}: answers {bad}: {result['errors'][:3]}")
        for kind, values in result["latencies"].items():
            http[kind].append(
                {"p50": percentile(values, 50), "p95": percentile(values, 95), "max": max(values)}
            )
            sizes[kind].append(result["bytes"][kind] / len(values))
        # The peer asks for other builds of the same kinds: the server's requests have
        # just brought their pages into SQLite's and the OS's caches.
        others = plan_queries(db, info, args.queries, seed=200 + r)
        for kind, values in store_times(db, others).items():
            store[kind].append(
                {"p50": percentile(values, 50), "p95": percentile(values, 95), "max": max(values)}
            )
        print(f"(queries: round {r + 1} of {args.repeat_3} done)", flush=True)

    big_lines = f"{StorePlan.sized(args.builds, args.records).big_lines:,}"
    rows = []
    detail = []
    for kind, label in KINDS:
        label = label.replace("BIG", big_lines)
        p95 = Samples([x["p95"] for x in http[kind]])
        s95 = Samples([x["p95"] for x in store[kind]])
        judged = kind != "healthz"
        rows.append(
            row(
                label,
                f"p95 {p95.show(ms)}",
                f"store only {s95.show(ms)}" if judged else "—",
                p95.median / s95.median if judged and s95.median > 0 else None,
                f"≤ {QUERY_P95 * 1000:.0f} ms" if judged else "—",
                p95.median <= QUERY_P95 if judged else None,
            )
        )
        detail.append([
            label,
            Samples([x["p50"] for x in http[kind]]).show(ms),
            p95.show(ms),
            Samples([x["max"] for x in http[kind]]).show(ms),
            Samples([x["p50"] for x in store[kind]]).show(ms) if judged else "—",
            f"{Samples(sizes[kind]).median / 1000:.1f} kB",
        ])  # fmt: skip
    n_requests = args.queries * len(KINDS)
    where = (
        f"from the cache {db} (generated in {info.generation_seconds:.0f} s when it was made)"
        if cached
        else f"generated now in {info.generation_seconds:.0f} s, cached as {db}"
    )
    words = ", ".join(
        f"{band} `{w}` ({count(info.word_hits.get(band, 0))} blocks)"
        for band, w in info.search_words.items()
    )
    plan = StorePlan.sized(args.builds, args.records)
    usual = (info.records - plan.big_builds * plan.big_lines) // max(1, args.builds - len(info.big))
    notes = [
        f"the store: {count(args.builds)} builds of {len(info.pipelines)} pipelines, "
        f"{count(info.records)} log records ({plural(len(info.big), 'build')} of {big_lines} "
        "lines, "
        f"the rest ~{usual:,} each), "
        f"{count(info.spans)} spans, {megabytes(info.bytes)}; {where}; "
        f"ready in {prepare_seconds:.0f} s this run; read through once before the rounds "
        f"so the OS caches it ({warm_seconds:.1f} s)",
        f"every round: a fresh `bass serve --db` on that file (pipelines file with the "
        f"{len(info.pipelines)} pipelines), {2 * len(KINDS)} untimed warm-up requests, then "
        f"{args.queries} requests of each kind ({n_requests:,} in all, kinds interleaved, "
        "random builds) from one client process over one keep-alive connection; "
        "p50/p95/max per round, median [min–max] over the rounds",
        f"search words (blocks of lines holding them): {words}; a search in a build asks for the "
        "common, the middling or (one time in five) the error word",
        "store only: the same store functions the route calls (`builds.*`, `telemetry.*`, "
        "the build page's `_load_build`), in this process, one read snapshot each, on the "
        "same file after the server stopped, for other random builds (as many, the same "
        "kinds); the ratio column is HTTP p95 / store p95",
        f"CPU: bass serve {server_cpu:.1f} s, the client {client_cpu:.1f} s over "
        f"{args.repeat_3 * n_requests:,} requests",
    ]
    title = (
        f"(3) dashboard queries: {count(args.builds)} builds, {count(info.records)} log "
        f"records, {plural(args.repeat_3, 'round')} of {args.queries} requests a kind"
    )
    print_table(title, rows, notes)
    print_grid(
        "(3) query latencies in detail",
        ("query", "p50", "p95", "max", "store only p50", "answer size"),
        detail,
    )


# -- the command ---------------------------------------------------------------------------

PARTS = {"1": "throughput", "2": "rss", "3": "queries"}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.ingest_bench",
        description="bass serve benchmarks: (1) OTLP ingest throughput, (2) memory while "
        "ingesting, (3) dashboard query latency on a large store.",
    )
    p.add_argument("--quick", action="store_true", help="a ~1 minute smoke run")
    p.add_argument("--only", default="throughput,rss,queries", help="parts to run (or 1,2,3)")
    p.add_argument("--repeat", type=int, help="repetitions of (1) and rounds of (3) "
                   "(default 3; quick 1)")  # fmt: skip
    p.add_argument("--requests", type=int, help="(1) requests of 512 records per run "
                   "(default 192; quick 32)")  # fmt: skip
    p.add_argument("--clients", default="1,4,16", help="(1) client counts (default 1,4,16)")
    p.add_argument("--rss-gb", type=float, help="(2) GB of OTLP/JSON to send "
                   "(default 5; quick 0.3)")  # fmt: skip
    p.add_argument("--builds", type=int, help="(3) builds in the store "
                   "(default 10,000; quick 1,000)")  # fmt: skip
    p.add_argument("--records", type=int, help="(3) log records in the store "
                   "(default 10,000,000; quick 500,000)")  # fmt: skip
    p.add_argument("--queries", type=int, help="(3) requests per kind per round "
                   "(default 60; quick 50)")  # fmt: skip
    p.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "bass-bench-cache"),
                   help="(3) where generated stores are kept between runs "
                   "(default %(default)s)")  # fmt: skip
    args = p.parse_args(argv)
    names = {v: k for k, v in PARTS.items()}
    args.parts = set()
    for part in filter(None, (s.strip().lower() for s in args.only.split(","))):
        part = names.get(part, part)
        if part not in PARTS:
            p.error(f"--only: unknown part {part!r} ({', '.join(PARTS.values())} or 1, 2, 3)")
        args.parts.add(part)
    quick = args.quick
    args.client_counts = [int(c) for c in args.clients.split(",") if c.strip()]
    args.repeat_1 = args.repeat or (1 if quick else 3)
    args.repeat_3 = args.repeat or (1 if quick else 3)
    args.requests = args.requests or (32 if quick else 192)
    args.rss_gb = args.rss_gb if args.rss_gb is not None else (0.3 if quick else 5.0)
    args.builds = args.builds or (1_000 if quick else 10_000)
    args.records = args.records or (500_000 if quick else 10_000_000)
    args.queries = args.queries or (50 if quick else 60)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    started = time.monotonic()
    print("# bass serve ingest and query benchmarks\n")
    print_machine()
    failures = Failures()
    with tempfile.TemporaryDirectory(prefix="bass-ingest-bench-") as tmp:
        for key in sorted(args.parts):
            part_started = time.monotonic()
            if key == "1":
                bench_throughput(args, Path(tmp), failures)
            elif key == "2":
                bench_rss(args, Path(tmp), failures)
            else:
                bench_queries(args, Path(tmp), failures)
            print(f"({PARTS[key]}: {time.monotonic() - part_started:.0f} s)\n", flush=True)
    return failures.report(started)


if __name__ == "__main__":
    sys.exit(main())
