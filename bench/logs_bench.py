"""Logs at disk speed: what a build's log costs to store, on disk, and to read back.

    python -m bench.logs_bench [--quick] [--only ingest,step,sdk,window,migrate] [--runs N]
                               [--peer REV] [--lines N]

Run from the repository root with the Python that has bass installed. Each part prints
a Markdown table: the measurement (median [min–max] over --runs), its floor or peer
from the same run, the ratio, the target of issue 13 and PASS or MISS. A failed
correctness check (a line lost, a read answering wrong) makes the exit code 1; a
missed target is only reported.

(1) ingest   log lines from the builder into a running ``bass serve`` over HTTP, 4
             concurrent builds: the bodies are real requests of the builder's exporter
             (a build entry printing 40-byte lines into a discarding receiver,
             bench/sink.py, keeps the largest), sent by 4 client processes
             (bench/otlp_client.py), each body with fresh trace ids. lines/s = lines
             answered 200 / (first client's start → last client's end). Floor, same
             run: this process appending the same text to a file (flushed, fsync at the
             end) and indexing it in 64 KB chunks in an FTS5 table (SQLite, in-process).
             Then, over HTTP: a search finds a line, and a window of lines reads back
             as sent. Targets: ≥ 150,000 lines/s and ≥ 0.5× the floor.
(2) step     a build whose step prints --lines (1,000,000) lines of 40 bytes, run by a
             real ``bass serve --local-worker``: trigger (POST) → the build has ended
             and the step's last line is answered by the log viewer's API
             (/api/…/lines?tail=1). Target ≤ 8 s. And the database's growth (file +
             WAL, checkpointed) per byte of log text. Target ≤ 1.5 bytes a byte.
(3) sdk      log records as other SDKs send them (bench/ingest_data.py: trace and span
             ids, 1–2 attributes, ~100-byte bodies of varied words, 512 a request),
             OTLP/JSON from 4 clients, into this bass and into the peer: bass at --peer
             (default: the commit before log blocks), checked out into a temporary git
             worktree and run the same way. Target: ≥ 1× the peer. Fidelity: every
             field of a sample of records reads back through the API as sent.
(4) window   reading windows of 500 lines anywhere in a 1,000,000-line step by line
             number (what the log viewer asks): the store call in-process, and over
             HTTP (/api/…/lines?from=&to=). Target: p95 ≤ 20 ms.
(5) migrate  a database as bass left it before log blocks (2,000,000 rows of 40-byte
             lines, indexed, counted) migrated as `bass serve` does on start: records/s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    Failures,
    bass_serve_on,
    builder_argv,
    child_env,
    http_get,
    new_trace_ids,
    percentile,
    print_machine,
    print_table,
    row,
    sink,
)
from bench.ingest_bench import collect, go, split, start_clients
from bench.ingest_data import bodies as sdk_bodies
from bench.ingest_data import fresh_ids

LINE = "{:07d} compiling src/module_{:03d}.c ok"  # 40 bytes with its newline
CLIENTS = 4
RATE_TARGET = 150_000
FLOOR_SHARE = 0.5
STEP_TARGET = 8.0
BYTES_TARGET = 1.5
WINDOW_TARGET = 0.020
WINDOW = 500
PEER = "c483681"  # bass before log blocks (a row per record)


# A build entry whose one step prints lines 1 to N (`line`), 40 bytes each.
JOB = r"""#!/usr/bin/env python3
import sys
from bass import build
build({"name": "logs", "steps": [{"name": "print", "exec": [sys.executable, "-c",
    "import sys\nw = sys.stdout.write\n"
    "for i in range(1, LINES + 1): w(f'{i:07d} compiling src/module_{i % 997:03d}.c ok\\n')"]}]})
"""


def job(lines: int) -> str:
    return JOB.replace("LINES", str(lines))


def line(n: int) -> str:
    return LINE.format(n, n % 997)


def stored_lines(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT COALESCE(SUM(n), 0) FROM log_counts").fetchone()[0]
    finally:
        conn.close()


def api(url: str, data: bytes | None = None, timeout: float = 30) -> Any:
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read())


def post_json(url: str, body: bytes) -> None:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()


def med(values: list[float], fmt: Any) -> str:
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.median(values))} [{fmt(min(values))}–{fmt(max(values))}]"


def per_s(value: float) -> str:
    return f"{value / 1000:,.0f} k/s"


def secs(value: float) -> str:
    return f"{value:.2f} s"


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


# -- (1) ingest ----------------------------------------------------------------------------


def builder_body(tmp: Path) -> tuple[bytes, list[str], int]:
    """The largest log request the real builder sends for a step printing 40-byte lines:
    (body, its trace ids, its records)."""
    entry = tmp / "entry.py"
    entry.write_text(job(200_000))
    with sink() as receiver:
        trace_id, root = new_trace_ids()
        argv = builder_argv(tmp / "-", receiver.traces_url, receiver.logs_url, trace_id, root)
        argv[1:4] = [str(entry)]  # `python entry.py` with the standard arguments
        subprocess.run(argv, env=child_env(), check=True, capture_output=True, cwd=tmp)
        body = receiver.largest_log_body()
    records = body.count(b'"timeUnixNano"')
    return body, [trace_id], records


def ingest_floor(text: bytes, requests: int, lines_per: int, tmp: Path) -> float:
    """Lines/s of appending the text to a file and indexing it in 64 KB chunks with
    FTS5, in this process: the least storing and indexing lines can cost."""
    path = tmp / "floor.log"
    for old in (path, tmp / "floor.db", tmp / "floor.db-wal", tmp / "floor.db-shm"):
        old.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp / "floor.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5 (body, content='', detail=none)")
    chunks = [text[i : i + 65536].decode() for i in range(0, len(text), 65536)]
    started = time.perf_counter()
    with open(path, "ab") as f:
        for _ in range(requests):
            f.write(text)
            f.flush()
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO t (body) VALUES (?)", ((c,) for c in chunks))
            conn.execute("COMMIT")
        os.fsync(f.fileno())
    elapsed = time.perf_counter() - started
    conn.close()
    return requests * lines_per / elapsed


def store_rate(body: bytes, ids: list[str], requests: int, lines_per: int, tmp: Path) -> float:
    """Lines/s of bass's own decode and store, in this process, one request after
    another (no HTTP): what the server does for each request, less HTTP."""
    from bass.ingest import otlp_json
    from bass.store import logs
    from bass.store.db import Database

    bodies = [fresh_ids(body, ids, False) for _ in range(requests)]
    path = tmp / "store.db"
    for old in (path, tmp / "store.db-wal", tmp / "store.db-shm"):
        old.unlink(missing_ok=True)
    db = Database(path)
    try:
        started = time.perf_counter()
        for one in bodies:
            db.submit(logs.insert_logs, otlp_json.decode_logs(one).logs).result()
        elapsed = time.perf_counter() - started
    finally:
        db.close()
    return requests * lines_per / elapsed


def write_spec(path: Path, body: bytes, trace_ids: list[str], records: int) -> Path:
    path.write_bytes(pickle.dumps({
        "path": "/v1/logs", "content_type": "application/json", "templates": [(body, trace_ids)],
        "protobuf": False, "records": records, "fresh": True,
    }))  # fmt: skip
    return path


def http_rate(
    tmp: Path, name: str, spec: Path, requests: int, expected_per: int, failures: Failures,
    code: Path | None = None, builder: bool = False,
) -> float:  # fmt: skip
    """Records/s into a fresh `bass serve` (of the code at `code`, else this one) from
    CLIENTS clients, every record sent checked stored; the builder's lines read back."""
    home = tmp / name
    with bass_serve_on(home, code=code) as serve:
        body, ids = pickle.loads(spec.read_bytes())["templates"][0]
        post_json(serve.logs_url, fresh_ids(body, ids, False))  # warm-up, untimed
        port = int(serve.url.rsplit(":", 1)[1])
        procs = start_clients(spec, port, split(requests, CLIENTS))
        go(procs)
        load = collect(procs)
        stored = stored_lines(serve.db)
        expected = load.records + expected_per
        failures.check(stored == expected, f"{name}: {stored:,} lines stored, {expected:,} sent")
        other = {s: n for s, n in load.answers().items() if s != "200"}
        failures.check(not other, f"{name}: answers {other}")
        if builder:
            read_back(serve.url, serve.db, failures, name)
    shutil.rmtree(home, ignore_errors=True)
    return load.records / load.wall


def read_back(url: str, db: Path, failures: Failures, name: str) -> None:
    """Over HTTP: the stored lines are found by a search and read by number as sent."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        trace_id, span_id, last = conn.execute(
            "SELECT trace_id, span_id, last_line FROM log_counts ORDER BY last_line DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    found = api(f"{url}/api/traces/{trace_id}/logs?span={span_id}&q=module_123.c&limit=5")["logs"]
    failures.check(bool(found) and all("module_123.c" in r["body"] for r in found),
                   f"{name}: a search over HTTP found {found[:1]}")  # fmt: skip
    first = max(last - 699, 1)
    page = api(f"{url}/api/traces/{trace_id}/logs?span={span_id}&tail=1&limit=700")["logs"]
    numbers = [r["line"] for r in page]
    failures.check(numbers == list(range(first, last + 1)),
                   f"{name}: the last 700 lines read back as {numbers[:3]}…")  # fmt: skip
    failures.check(all(r["body"] == line(int(r["body"][:7])) for r in page),
                   f"{name}: a line read back changed")  # fmt: skip


def bench_ingest(args: argparse.Namespace, tmp: Path, failures: Failures) -> None:
    body, ids, records = builder_body(tmp)
    failures.check(records > 1000, f"(1) the builder's largest request held {records} records")
    text = b"".join(line(n).encode() + b"\n" for n in range(records))
    spec = write_spec(tmp / "builder.spec", body, ids, records)
    requests = max(CLIENTS, args.ingest_lines // records)
    rates, floors, stores = [], [], []
    for run in range(args.runs):
        floors.append(ingest_floor(text, requests, records, tmp))
        stores.append(store_rate(body, ids, requests, records, tmp))
        rates.append(http_rate(tmp, f"ingest{run}", spec, requests, records, failures,
                               builder=True))  # fmt: skip
    floor = statistics.median(floors)
    rate = statistics.median(rates)
    print_table(
        "(1) Log lines from the builder, 4 concurrent builds, over HTTP",
        [
            row(
                f"lines/s stored (searchable, readable), {CLIENTS} clients",
                med(rates, per_s),
                "—",
                None,
                f"≥ {RATE_TARGET / 1000:.0f} k/s",
                rate >= RATE_TARGET,
            ),
            row(
                "the same against the floor",
                per_s(rate),
                per_s(floor),
                rate / floor,
                f"≥ {FLOOR_SHARE}× floor",
                rate / floor >= FLOOR_SHARE,
            ),
            row(
                "bass's decode + store in-process, one request after another (no HTTP)",
                med(stores, per_s),
                per_s(floor),
                statistics.median(stores) / floor,
            ),
        ],  # fmt: skip
        [
            f"{requests} requests of {records:,} lines ({len(body) / 1e6:.2f} MB of OTLP/JSON "
            f"each, as the builder sent them), {requests * records:,} lines a run",
            f"floor: append the text to a file + FTS5 index of 64 KB chunks in-process: "
            f"{med(floors, per_s)}",
        ],
    )


# -- (2) a 1,000,000-line step -------------------------------------------------------------


def make_repo(path: Path, lines: int) -> None:
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    path.mkdir(parents=True)
    subprocess.run([*git, "init", "-q", str(path)], check=True)
    (path / "job.py").write_text(job(lines))
    (path / "job.py").chmod(0o755)
    subprocess.run([*git, "-C", str(path), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(path), "commit", "-qm", "big step"], check=True)


def db_bytes(db: Path) -> int:
    conn = sqlite3.connect(db, timeout=30)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()
    return sum(Path(f"{db}{s}").stat().st_size for s in ("", "-wal") if Path(f"{db}{s}").exists())


@contextlib.contextmanager
def big_server(tmp: Path, lines: int) -> Iterator[Any]:
    repo = tmp / "repo"
    if not repo.exists():
        make_repo(repo, lines)
    pipelines = {"big": {"repository": str(repo), "exec": ["./job.py"]}}
    home = tmp / "step"
    shutil.rmtree(home, ignore_errors=True)
    workspace = ["--workspace-root", str(tmp / "ws")]
    with bass_serve_on(home, pipelines=pipelines,
                       extra_args=["--local-worker", *workspace]) as serve:  # fmt: skip
        yield serve


def one_big_build(serve: Any, lines: int, failures: Failures) -> tuple[float, int, str, str]:
    """(trigger → ended and last line answered, seconds; number; trace id; span id)."""
    started = time.monotonic()
    queued = api(f"{serve.url}/api/pipelines/big/builds", data=b"{}")
    number = queued.get("number") or queued["build"]["number"]
    base = f"{serve.url}/api/pipelines/big/builds/{number}"
    span_id, trace_id = "", ""
    deadline = started + 300
    while time.monotonic() < deadline:
        build = api(base)
        trace_id = build["build"]["trace_id"]
        if build["build"]["state"] not in ("queued", "running"):
            todo = list(build["spans"])
            while todo and not span_id:
                span = todo.pop()
                span_id = span["span_id"] if span["name"] == "print" else ""
                todo += span.get("children", [])
            tail = api(f"{base}/lines?span={span_id}&tail=1")
            if tail["lines"] and tail["lines"][-1]["n"] == lines:
                elapsed = time.monotonic() - started
                failures.check(build["build"]["state"] == "ok",
                               f"(2) build {number} ended {build['build']['state']}")  # fmt: skip
                last = tail["lines"][-1]["body"]
                failures.check(last == line(lines), f"(2) the last line reads {last!r}")
                return elapsed, number, trace_id, span_id
        time.sleep(0.01)
    failures.check(False, f"(2) build {number}: its {lines:,} lines not there in 300 s")
    return float("nan"), number, trace_id, span_id


def bench_step(args: argparse.Namespace, tmp: Path, failures: Failures) -> None:
    lines = args.lines
    text_bytes = sum(len(line(n)) for n in range(1, lines + 1))
    times, ratios = [], []
    with big_server(tmp, lines) as serve:
        for _ in range(args.runs):
            before = db_bytes(serve.db)
            elapsed, *_ = one_big_build(serve, lines, failures)
            times.append(elapsed)
            ratios.append((db_bytes(serve.db) - before) / text_bytes)
    print_table(
        f"(2) A step printing {lines:,} lines of 40 bytes",
        [
            row(
                "trigger → build ended, last line answered",
                med(times, secs),
                "—",
                None,
                f"≤ {STEP_TARGET:.0f} s",
                statistics.median(times) <= STEP_TARGET,
            ),
            row(
                "database growth per byte of log text (index included)",
                med(ratios, lambda v: f"{v:.2f}"),
                "—",
                None,
                f"≤ {BYTES_TARGET}",
                statistics.median(ratios) <= BYTES_TARGET,
            ),
        ],  # fmt: skip
        [
            f"{text_bytes / 1e6:.1f} MB of text a build (without newlines); the database "
            "file and its WAL, checkpointed, before and after each build"
        ],  # fmt: skip
    )


# -- (3) other SDKs' records ------------------------------------------------------------------


@contextlib.contextmanager
def peer_checkout(rev: str, tmp: Path) -> Iterator[Path]:
    path = tmp / f"peer-{rev}"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-f", "--detach", str(path), rev],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)],
                       capture_output=True)  # fmt: skip


def bench_sdk(args: argparse.Namespace, tmp: Path, failures: Failures) -> None:
    templates = [(b.json, b.trace_ids) for b in sdk_bodies("logs", 16)]
    spec = tmp / "sdk.spec"
    spec.write_bytes(pickle.dumps({
        "path": "/v1/logs", "content_type": "application/json", "templates": templates,
        "protobuf": False, "records": 512, "fresh": True,
    }))  # fmt: skip
    requests = max(CLIENTS, args.sdk_records // 512)
    fidelity(tmp, templates[0], failures)
    ours, theirs = [], []
    with peer_checkout(args.peer, tmp) as peer:
        for run in range(args.runs):
            ours.append(http_rate(tmp, f"sdk{run}", spec, requests, 512, failures))
            theirs.append(http_rate(tmp, f"peer{run}", spec, requests, 512, failures, code=peer))
    rate, peer_rate = statistics.median(ours), statistics.median(theirs)
    print_table(
        "(3) Log records as other SDKs send them (OTLP/JSON, 4 clients)",
        [
            row(
                "records/s stored",
                med(ours, per_s),
                f"{per_s(peer_rate)} (bass {args.peer})",
                rate / peer_rate,
                "≥ 1× the peer",
                rate >= peer_rate,
            )
        ],  # fmt: skip
        [
            f"{requests} requests of 512 records a run; peer: {med(theirs, per_s)}",
            "fidelity: every field of one request's records read back as sent (checked)",
        ],  # fmt: skip
    )


def plain_value(value: dict[str, Any]) -> Any:
    """An OTLP/JSON AnyValue of a scalar kind as bass gives it back."""
    ((kind, inner),) = value.items()
    return int(inner) if kind == "intValue" else inner


def fidelity(tmp: Path, template: tuple[bytes, list[str]], failures: Failures) -> None:
    """Every record of one SDK request reads back with its time, severity, body,
    attributes and ids, in the order sent."""
    body = fresh_ids(*template, False)
    sent = [
        record
        for rl in json.loads(body)["resourceLogs"]
        for sl in rl["scopeLogs"]
        for record in sl["logRecords"]
    ]
    with bass_serve_on(tmp / "fidelity") as serve:
        post_json(serve.logs_url, body)
        by_span: dict[tuple[str, str], list[dict]] = {}
        for record in sent:
            by_span.setdefault((record["traceId"], record["spanId"]), []).append(record)
        for (trace_id, span_id), records in by_span.items():
            url = f"{serve.url}/api/traces/{trace_id}/logs?span={span_id}&limit=10000"
            got = api(url)["logs"]
            ok = len(got) == len(records) and all(
                g["body"] == r["body"]["stringValue"]
                and g["time_ns"] == int(r["timeUnixNano"])
                and g["severity_number"] == r.get("severityNumber", 0)
                and g["severity_text"] == r.get("severityText", "")
                and g["span_id"] == r["spanId"]
                and g["attributes"] == {a["key"]: plain_value(a["value"])
                                        for a in r.get("attributes", [])}
                for g, r in zip(got, records, strict=False)
            )  # fmt: skip
            failures.check(
                ok, f"(3) {trace_id} {span_id}: records read back differ from those sent"
            )
    shutil.rmtree(tmp / "fidelity", ignore_errors=True)


# -- (4) windows of a 1,000,000-line step -------------------------------------------------------


def bench_window(args: argparse.Namespace, tmp: Path, failures: Failures) -> None:
    from bass.store import logs
    from bass.store.db import _dict_factory

    lines = args.lines
    rng = random.Random(13)
    store_times, http_times = [], []
    with big_server(tmp, lines) as serve:
        _, number, trace_id, span_id = one_big_build(serve, lines, failures)
        conn = sqlite3.connect(f"file:{serve.db}?mode=ro", uri=True)
        conn.row_factory = _dict_factory
        base = f"{serve.url}/api/pipelines/big/builds/{number}/lines?span={span_id}"
        for _ in range(args.windows):
            first = rng.randrange(1, lines - WINDOW)
            started = time.perf_counter()
            rows = logs.log_lines(conn, trace_id, span_id, first, first + WINDOW - 1)
            store_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            answer = json.loads(http_get(f"{base}&from={first}&to={first + WINDOW - 1}"))
            http_times.append(time.perf_counter() - started)
            ok = [r["line"] for r in rows] == list(range(first, first + WINDOW)) and [
                r["n"] for r in answer["lines"]
            ] == list(range(first, first + WINDOW))
            failures.check(ok, f"(4) lines {first}… read back wrong")
        conn.close()
    p95s = {"store call": percentile(store_times, 95), "over HTTP": percentile(http_times, 95)}
    print_table(
        f"(4) Windows of {WINDOW} lines of a {lines:,}-line step, by line number",
        [
            row(
                f"{what}: p50 / p95",
                f"{ms(percentile(t, 50))} / {ms(p95s[what])}",
                "—",
                None,
                f"p95 ≤ {WINDOW_TARGET * 1000:.0f} ms",
                p95s[what] <= WINDOW_TARGET,
            )
            for what, t in (("store call", store_times), ("over HTTP", http_times))
        ],  # fmt: skip
        [
            f"{args.windows} windows at random places; over HTTP each answer carries every "
            "line's HTML (colours) as the viewer reads it"
        ],  # fmt: skip
    )


# -- (5) migrating a database of rows into blocks ------------------------------------------


def old_store(path: Path, records: int) -> None:
    """A database as bass left it before log blocks (migrations up to 0010): `records`
    rows of 40-byte lines in 20 spans of 10 traces, indexed and counted as it did."""
    from bass.store import schema

    names = [name for name, *_ in schema.MIGRATIONS]
    conn = sqlite3.connect(path, isolation_level=None)
    saved = schema.MIGRATIONS
    schema.MIGRATIONS = saved[: names.index("0011_log_blocks")]
    try:
        schema.migrate(conn)
    finally:
        schema.MIGRATIONS = saved
    conn.execute("BEGIN")
    spans = [(f"{t:032x}", f"{s:016x}") for t in range(1, 11) for s in range(1, 3)]
    lines = dict.fromkeys(spans, 0)
    for start in range(0, records, 10_000):
        rows = []
        for n in range(start, min(records, start + 10_000)):
            span = spans[(n // 500) % len(spans)]  # runs of 500 lines, steps taking turns
            lines[span] += 1
            rows.append((n + 1, *span, 1_750_000_000_000_000_000 + n, 9, "INFO", line(n),
                         '{"log.iostream": "stdout"}', 1, lines[span]))  # fmt: skip
        conn.executemany(
            "INSERT INTO logs (id, trace_id, span_id, time_ns, severity_number, severity_text,"
            " body, attributes, resource_id, line) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany("INSERT INTO logs_fts (rowid, trace_id, body) VALUES (?, ?, ?)",
                         ((r[0], r[1], r[6]) for r in rows))  # fmt: skip
    conn.executemany("INSERT INTO log_counts (trace_id, span_id, n, last_line) VALUES (?, ?, ?, ?)",
                     ((*span, n, n) for span, n in lines.items()))  # fmt: skip
    conn.execute("COMMIT")
    conn.close()


def bench_migrate(args: argparse.Namespace, tmp: Path, failures: Failures) -> None:
    from bass.store import logs, schema
    from bass.store.db import _dict_factory

    records = args.migrate_records
    path = tmp / "old.db"
    old_store(path, records)
    before = path.stat().st_size
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = _dict_factory
    started = time.perf_counter()
    applied = schema.migrate(conn)
    elapsed = time.perf_counter() - started
    kept = conn.execute("SELECT SUM(n) AS n FROM log_blocks").fetchone()["n"]
    failures.check(applied == ["0011_log_blocks"] and kept == records,
                   f"(5) migrated {applied}: {kept} of {records:,} records")  # fmt: skip
    trace, span = f"{1:032x}", f"{1:016x}"
    hits = logs.line_hits(conn, trace, span, "module_007.c")
    failures.check(bool(hits), "(5) a search after the migration found nothing")
    conn.execute("VACUUM")
    conn.close()
    print_table(
        f"(5) Migration 0011: {records:,} log rows into blocks, on start",
        [
            row(
                "records/s migrated (one transaction, with the search index)",
                per_s(records / elapsed),
                "—",
                None,
            )
        ],  # fmt: skip
        [
            f"{elapsed:.1f} s; the file {before / 1e6:.0f} MB before, "
            f"{path.stat().st_size / 1e6:.0f} MB after (vacuumed)"
        ],  # fmt: skip
    )


PARTS = {
    "ingest": bench_ingest,
    "step": bench_step,
    "sdk": bench_sdk,
    "window": bench_window,
    "migrate": bench_migrate,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer and smaller runs")
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines of the big step")
    parser.add_argument("--peer", default=PEER, help="the bass commit to compare (3) with")
    args = parser.parse_args(argv)
    args.ingest_lines = 200_000 if args.quick else 2_000_000
    args.sdk_records = 50_000 if args.quick else 200_000
    args.windows = 50 if args.quick else 200
    args.migrate_records = 200_000 if args.quick else 2_000_000
    if args.quick:
        args.runs = 1
    started = time.monotonic()
    print_machine()
    failures = Failures()
    with tempfile.TemporaryDirectory(prefix="bass-logs-bench-") as tmp:
        for name in args.only.split(","):
            PARTS[name](args, Path(tmp), failures)
    return failures.report(started)


if __name__ == "__main__":
    sys.exit(main())
