"""Builder benchmarks: per-step overhead, export rate, log throughput into bass serve.

    python -m bench.builder_bench [--quick] [--only a,b,c] [--repeat N] [--steps N]
                                  [--records N] [--lines N]

Run from the repository root with the Python that has bass installed (the builder runs
as ``python -m bass_builder pipeline.json`` with the standard arguments a worker passes,
a real subprocess, exactly as in a build). Every part prints a Markdown table:
what was measured (median [min–max] over the repetitions), the peer or floor it is
compared with, measured in the same run, the ratio, the issue's target, PASS or MISS.

(a) overhead   N trivial steps (``true``), ordered and unordered, against a bare Python
               loop starting the same N processes and capturing their output
               (``subprocess.run(["true"], capture_output=True)``): both whole-process
               wall times, interpreter start-up on both sides. The builder exports to a
               discarding receiver in its own process (bench/sink.py).
               Target: ordered ≤ 1.3× the bare loop.
(b) export     one step printing N lines of 100 bytes; log records per second the
               builder's exporter hands to the discarding receiver, counted by the
               receiver: records / (first log request's arrival → last log answer). The
               whole-process rate (N / builder wall time) is shown too, and the step's
               run time (its span) against the producer into a drained pipe: what the
               builder's own line handling costs when the receiver is never the limit.
               Target: ≥ 40,000 records/s (20× the prototype's ~2,000/s).
(c) logs       one step printing N lines (default 1,000,000) of 100 bytes to a running
               ``bass serve`` (its own temp dir and SQLite file, a fresh one for every
               repetition; the builder queues at most QUEUE_RECORDS records, so past
               that a store slower than the step holds the step back). Two comparisons:
               - the step's run time (its span's start → end, read from the store)
                 against the same producer writing into a pipe drained by this process.
                 Target ≤ 2×.
               - lines per second until the last line is stored (builder start → the
                 first poll of ``SELECT MAX(id) FROM logs`` that sees N rows, polled read-
                 only every 10 ms) against the store's own in-process insert rate:
                 ``Database.submit(logs.insert_logs, rows)`` on a fresh file, same
                 number of rows, in batches of the size the builder sends (observed:
                 records per request at the receiver of part (b), or a calibration run).
                 Target ≥ 0.5×.
               For diagnosis: bass serve's decoder (``otlp_json.decode_logs``) in-process
               on the same request, and the served rate against decode + insert.
               Every line must be stored (COUNT(*) of the trace's logs == N) and the
               builder must report no dropped telemetry: a failed check exits 1.

The producer step is ``python -c`` writing N fixed 100-byte lines one by one through a
64 KiB buffered writer, so it is not the bottleneck; its time alone (into /dev/null and
into a drained pipe) is printed too.

Exit code: 0, or 1 when a correctness check failed (records lost, a process failed).
A missed target is reported in the table, not in the exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import bass_builder
from bench.common import (
    Failures,
    Samples,
    bass_serve,
    builder_argv,
    child_env,
    count,
    drop_report,
    new_trace_ids,
    per_second,
    plural,
    print_machine,
    print_table,
    row,
    seconds,
    sink,
    timed_run,
)

# The targets.
OVERHEAD_TARGET = 1.3  # ordered builder wall ≤ 1.3 × the bare loop
PROTOTYPE_RECORDS_PER_SECOND = 2_000
EXPORT_TARGET = 20 * PROTOTYPE_RECORDS_PER_SECOND  # records/s at the receiver
STEP_TIME_TARGET = 2.0  # step run time ≤ 2 × the producer into a drained pipe
STORE_RATE_TARGET = 0.5  # lines/s until stored ≥ 0.5 × the in-process insert rate

BARE_LOOP = """\
import subprocess, sys
for _ in range(int(sys.argv[1])):
    subprocess.run(["true"], capture_output=True)
"""

LINE = b"bass benchmark log line: " + b"0123456789abcdefghijklmnopqrstuvwxyz" * 2
LINE = LINE[:99] + b"\n"  # 100 bytes with the newline
PRODUCER = f"""\
import sys
line = {LINE!r}
out = open(1, "wb", buffering=1 << 16, closefd=False)
write = out.write
for _ in range(int(sys.argv[1])):
    write(line)
out.flush()
"""


def producer_argv(lines: int) -> list[str]:
    return [sys.executable, "-c", PRODUCER, str(lines)]


def write_json(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value))
    return path


def producer_into_devnull(lines: int) -> float:
    started = time.perf_counter()
    subprocess.run(producer_argv(lines), env=child_env(), stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def producer_into_drained_pipe(lines: int) -> float:
    """The producer writing into a pipe that this process reads and throws away."""
    started = time.perf_counter()
    proc = subprocess.Popen(producer_argv(lines), env=child_env(), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    while os.read(fd, 1 << 20):
        pass
    proc.wait()
    elapsed = time.perf_counter() - started
    proc.stdout.close()
    if proc.returncode != 0:
        raise RuntimeError(f"the producer exited {proc.returncode}")
    return elapsed


# -- (a) per-step overhead ---------------------------------------------------------------


def bench_overhead(args: argparse.Namespace, tmp: Path, failures: Failures) -> None:
    n = args.steps
    steps = [{"name": f"step-{i}", "exec": ["true"]} for i in range(n)]
    ordered = write_json(tmp / "ordered.json", {"name": "ordered", "steps": steps})
    unordered = write_json(
        tmp / "unordered.json", {"name": "unordered", "order": "unordered", "steps": steps}
    )
    bare_argv = [sys.executable, "-c", BARE_LOOP, str(n)]
    expected_spans = 2 * (n + 1)  # every step and the pipeline node: at start and at end
    times: dict[str, list[float]] = {"bare": [], "ordered": [], "unordered": []}
    span_counts: list[int] = []
    with sink() as receiver:

        def builder(pipeline: Path) -> float:
            receiver.reset()
            elapsed, proc = timed_run(
                builder_argv(pipeline, receiver.traces_url, receiver.logs_url, *new_trace_ids()),
                cwd=tmp,
            )
            spans = int(receiver.stats()["spans"])
            span_counts.append(spans)
            failures.check(
                spans == expected_spans, f"(a) {spans} spans received, not {expected_spans}"
            )
            failures.check(drop_report(proc.stderr) is None, f"(a) {drop_report(proc.stderr)}")
            return elapsed

        # One untimed round: bytecode caches, page cache, the sink's first connection.
        timed_run(bare_argv)
        builder(ordered)
        builder(unordered)
        for _ in range(args.repeat_a):  # interleaved, so drifting load hits all three
            times["bare"].append(timed_run(bare_argv)[0])
            times["ordered"].append(builder(ordered))
            times["unordered"].append(builder(unordered))

    bare = Samples(times["bare"])
    ordered_s, unordered_s = Samples(times["ordered"]), Samples(times["unordered"])
    ordered_ratio = ordered_s.median / bare.median
    rows = [
        row(
            f"{n} × true, ordered: builder wall",
            ordered_s.show(seconds),
            f"bare loop {bare.show(seconds)}",
            ordered_ratio,
            f"≤ {OVERHEAD_TARGET}×",
            ordered_ratio <= OVERHEAD_TARGET,
        ),
        row(
            f"{n} × true, unordered (-j {os.cpu_count()}): builder wall",
            unordered_s.show(seconds),
            f"bare loop {bare.show(seconds)}",
            unordered_s.median / bare.median,
            "none set",
        ),
    ]
    per_step = (ordered_s.median - bare.median) / n
    print_table(
        f"(a) per-step overhead: {n} trivial steps, {plural(args.repeat_a, 'repetition')}",
        rows,
        [
            "whole-process wall times: `python -m bass_builder pipeline.json --trace-id … "
            "--root-span-id … -t … -l …` vs `python -c` running the bare loop "
            "(`subprocess.run(['true'], capture_output=True)` × N); interpreter start-up on "
            "both sides",
            f"the builder's extra cost per ordered step: {per_step * 1000:.2f} ms "
            "(median difference / N)",
            f"spans received by the sink per builder run: {min(span_counts)}–{max(span_counts)} "
            f"(expected {expected_spans}: each node at start and at end)",
        ],
    )


# -- (b) export rate ---------------------------------------------------------------------


def bench_export(args: argparse.Namespace, tmp: Path, failures: Failures) -> tuple[float, bytes]:
    """Part (b); returns (median records per log request, the largest request's body)."""
    n = args.records
    pipeline = write_json(tmp / "export.json", {"name": "export", "exec": producer_argv(n)})
    at_receiver, whole, per_request, bytes_per_record = [], [], [], []
    received: list[int] = []
    steps, drained = [], []
    with sink() as receiver:
        for i in range(args.repeat_b + 1):  # the first round is untimed
            receiver.reset()
            elapsed, proc = timed_run(
                builder_argv(pipeline, receiver.traces_url, receiver.logs_url, *new_trace_ids()),
                cwd=tmp,
            )
            stats = receiver.stats()
            got = int(stats["logs"])
            failures.check(got == n, f"(b) the sink received {got:,} log records, not {n:,}")
            failures.check(drop_report(proc.stderr) is None, f"(b) {drop_report(proc.stderr)}")
            if i == 0:
                continue
            received.append(got)
            window = stats["last_log_at"] - stats["first_log_at"]
            at_receiver.append(got / window)
            whole.append(n / elapsed)
            per_request.append(got / stats["log_requests"])
            bytes_per_record.append(stats["log_bytes"] / got)
            body = receiver.largest_log_body()
            steps.append(receiver.step_seconds("export"))
            drained.append(producer_into_drained_pipe(n))

    floor = f"{EXPORT_TARGET:,}/s (20 × prototype)"
    rec = Samples(at_receiver)
    wall = Samples(whole)
    target = f"≥ {EXPORT_TARGET:,}/s"
    rows = [
        row(
            "log records/s at the receiver (first → last log request)",
            rec.show(per_second),
            floor,
            rec.median / EXPORT_TARGET,
            target,
            rec.median >= EXPORT_TARGET,
        ),
        row(
            f"log records/s, whole builder process ({count(n)} / wall)",
            wall.show(per_second),
            floor,
            wall.median / EXPORT_TARGET,
            target,
            wall.median >= EXPORT_TARGET,
        ),
        row(
            "step run time (its span), this receiver",
            Samples(steps).show(seconds),
            f"producer → drained pipe {Samples(drained).show(seconds)}",
            Samples(steps).median / Samples(drained).median,
        ),
    ]
    batch = Samples(per_request)
    complete = all(got == n for got in received)
    print_table(
        f"(b) export rate: one step printing {count(n)} lines of 100 bytes, "
        f"{plural(args.repeat_b, 'repetition')}",
        rows,
        [
            "the receiver is bench/sink.py (ThreadingHTTPServer in its own process, 200 `{}`, "
            "records counted, bodies discarded); PASS/MISS is judged on the receiver's rate",
            f"records received per run: {', '.join(count(g) for g in received)} of {count(n)} "
            f"({'all delivered' if complete else 'RECORDS MISSING'}); records per log request: "
            f"{batch.show(lambda v: f'{v:,.0f}')}, {Samples(bytes_per_record).median:.0f} "
            "bytes of OTLP/JSON per record",
        ],
    )
    return batch.median, body


# -- (c) log throughput into bass serve -------------------------------------------------


def decoded_rows(body: bytes) -> list[tuple]:
    """The rows bass serve stores for one request the builder sent (its own decoder)."""
    from bass.ingest import otlp_json

    rows = otlp_json.decode_logs(body).logs
    if not rows:
        raise RuntimeError("the sample request decoded to no log records")
    return rows


def decode_rate(body: bytes, min_seconds: float = 0.5) -> float:
    """Records per second of bass serve's OTLP/JSON log decoder, in-process, on `body`."""
    from bass.ingest import otlp_json

    records = spent = 0.0
    while spent < min_seconds or records == 0:
        started = time.perf_counter()
        decoded = otlp_json.decode_logs(body)
        spent += time.perf_counter() - started
        records += len(decoded.logs)
    return records / spent


def store_insert_rate(path: Path, rows_total: int, batch: list[tuple]) -> float:
    """Rows per second of `Database.submit(logs.insert_logs, rows)` (the receiver's
    own write path: group commit, the same sync mode) on a fresh file, `rows_total` rows
    in batches like `batch` (only the writes are timed)."""
    from bass.store import logs
    from bass.store.db import Database

    db = Database(path)
    spent = 0.0
    try:
        done = 0
        while done < rows_total:
            rows = batch[: rows_total - done]
            started = time.perf_counter()
            db.submit(logs.insert_logs, rows).result()
            spent += time.perf_counter() - started
            done += len(rows)
    finally:
        db.close()
    return rows_total / spent


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@dataclass
class ServeRun:
    """One builder run into bass serve: seconds, and what the store ended up with."""

    stored: int  # log rows of the trace
    dropped: str  # the builder's drop report, if any
    step: float  # the step's span, start to end
    until_stored: float  # builder start to the last row seen
    builder: float  # builder start to its exit


def run_into_serve(home: Path, pipeline: Path, n: int, failures: Failures) -> ServeRun:
    """One builder run into a fresh bass serve; times of the step and of the last line."""
    trace_id, root_span_id = new_trace_ids()
    with bass_serve(home) as serve:
        argv = builder_argv(pipeline, serve.traces_url, serve.logs_url, trace_id, root_span_id)
        conn = sqlite3.connect(f"file:{serve.db}?mode=ro", uri=True, isolation_level=None)
        try:
            started = time.monotonic()
            proc = subprocess.Popen(
                argv, cwd=home, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            stored_at = 0.0
            while True:  # MAX(id) is one index lookup: cheap to poll, unlike COUNT(*)
                exited = proc.poll() is not None
                (last_id,) = conn.execute("SELECT MAX(id) FROM logs").fetchone()
                if (last_id or 0) >= n:
                    stored_at = time.monotonic()
                    break
                if exited:
                    break
                time.sleep(0.01)
            _, stderr = proc.communicate()
            finished = time.monotonic()
            failures.check(proc.returncode == 0, f"(c) the builder exited {proc.returncode}")
            report = drop_report(stderr)
            failures.check(report is None, f"(c) {report}")
            (stored,) = conn.execute(
                "SELECT COUNT(*) FROM logs WHERE trace_id = ?", (trace_id,)
            ).fetchone()
            span = conn.execute(
                "SELECT start_ns, end_ns FROM spans WHERE trace_id = ? AND name = 'logs'",
                (trace_id,),
            ).fetchone()
        finally:
            conn.close()
    failures.check(stored == n, f"(c) {stored:,} lines stored, not {n:,}")
    failures.check(bool(stored_at), "(c) the last line was never seen in the store")
    failures.check(span is not None and span[1] > 0, "(c) the step's span did not end in the store")
    return ServeRun(
        stored=stored,
        dropped=report or "",
        step=(span[1] - span[0]) / 1e9 if span else float("nan"),
        until_stored=(stored_at or finished) - started,
        builder=finished - started,
    )


def calibrate(args: argparse.Namespace, tmp: Path) -> tuple[float, bytes]:
    """(records per log request, the largest request's body) the builder sends for this
    output: part (b) measures them when it runs, else one short run against the sink."""
    n = min(args.lines, 200_000)
    pipeline = write_json(tmp / "calibrate.json", {"name": "calibrate", "exec": producer_argv(n)})
    with sink() as receiver:
        timed_run(builder_argv(pipeline, receiver.traces_url, receiver.logs_url, *new_trace_ids()))
        stats = receiver.stats()
        body = receiver.largest_log_body()
    return stats["logs"] / stats["log_requests"], body


def bench_logs(
    args: argparse.Namespace, tmp: Path, failures: Failures, sample: tuple[float, bytes] | None
) -> None:
    n = args.lines
    per_request, body = sample or calibrate(args, tmp)
    batch_size = max(1, round(per_request))
    rows = decoded_rows(body)
    batch = (rows * -(-batch_size // len(rows)))[:batch_size]
    pipeline = write_json(tmp / "logs.json", {"name": "logs", "exec": producer_argv(n)})
    results: list[ServeRun] = []
    drained, devnull, inserts, decodes = [], [], [], []
    for i in range(args.repeat_c):
        results.append(run_into_serve(tmp / f"serve-{i}", pipeline, n, failures))
        _remove_db(tmp / f"serve-{i}" / "bass.db")
        drained.append(producer_into_drained_pipe(n))
        devnull.append(producer_into_devnull(n))
        path = tmp / f"insert-{i}.db"
        inserts.append(store_insert_rate(path, n, batch))
        _remove_db(path)
        decodes.append(decode_rate(body))

    step = Samples([r.step for r in results])
    pipe = Samples(drained)
    rate = Samples([n / r.until_stored for r in results])
    insert = Samples(inserts)
    decode = Samples(decodes)
    serial = Samples([1 / (1 / d + 1 / i) for d, i in zip(decodes, inserts, strict=True)])
    step_ratio = step.median / pipe.median
    rate_ratio = rate.median / insert.median
    rows_out = [
        row(
            "step run time (its span, from the store)",
            step.show(seconds),
            f"producer → drained pipe {pipe.show(seconds)}",
            step_ratio,
            f"≤ {STEP_TIME_TARGET:g}×",
            step_ratio <= STEP_TIME_TARGET,
        ),
        row(
            "lines/s until the last line is stored",
            rate.show(per_second),
            f"store insert, in-process {insert.show(per_second)}",
            rate_ratio,
            f"≥ {STORE_RATE_TARGET:g}×",
            rate_ratio >= STORE_RATE_TARGET,
        ),
        row(
            "builder wall time (exits once all is delivered)",
            Samples([r.builder for r in results]).show(seconds),
        ),
        row("the producer alone into /dev/null", Samples(devnull).show(seconds)),
        row("bass serve's OTLP/JSON log decoder, in-process", decode.show(per_second)),
        row(
            "lines/s until stored, against decoding too",
            rate.show(per_second),
            f"decode, then insert, in-process {serial.show(per_second)}",
            rate.median / serial.median,
        ),
    ]
    stored = [r.stored for r in results]
    drops = [r.dropped for r in results if r.dropped]
    print_table(
        f"(c) log throughput into a running bass serve: one step printing {count(n)} lines "
        f"of 100 bytes, {plural(args.repeat_c, 'repetition')}",
        rows_out,
        [
            f"lines stored per run: {', '.join(count(s) for s in stored)} of {count(n)} "
            f"({'all stored' if all(s == n for s in stored) else 'LINES MISSING'}); "
            f"builder drop reports: {'; '.join(drops) if drops else 'none'}",
            "a fresh `bass serve` (empty orchestrator-pipelines.json, --db in a temp dir) and "
            "a fresh SQLite file for every repetition, on the same file system as the peer's",
            f"store insert peer: `Database.submit(logs.insert_logs, rows)`, {count(n)} "
            f"rows in batches of {batch_size:,} (the mean records per request the builder sent "
            "to the sink); the rows are the server's own decoding "
            "(`otlp_json.decode_logs`) of a real request of the builder",
            "'until stored': from the builder's start to the first read-only poll "
            "(every 10 ms) that sees the last row",
            f"the builder queues at most {bass_builder.QUEUE_RECORDS:,} records or "
            f"{bass_builder.QUEUE_BYTES >> 20} MiB of OTLP/JSON (QUEUE_RECORDS, QUEUE_BYTES); "
            "past that its step waits for the store, so the step's run time follows the "
            "store's rate",
        ],
    )


# -- the command ------------------------------------------------------------------------

PARTS = {"a": "overhead", "b": "export", "c": "logs"}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.builder_bench",
        description="Builder benchmarks: (a) per-step overhead, (b) export rate, "
        "(c) log throughput into bass serve.",
    )
    p.add_argument(
        "--quick", action="store_true", help="a ~30 s smoke run: fewer repetitions, smaller sizes"
    )
    p.add_argument(
        "--only", default="a,b,c", help="parts to run, e.g. a,c (or overhead,export,logs)"
    )
    p.add_argument(
        "--repeat", type=int, help="repetitions of every part (default a/b/c 9/4/3, quick 3/3/1)"
    )
    p.add_argument("--steps", type=int, help="(a) trivial steps (default 200)")
    p.add_argument(
        "--records", type=int, help="(b) lines printed (default 1,000,000; quick 200,000)"
    )
    p.add_argument("--lines", type=int, help="(c) lines printed (default 1,000,000; quick 200,000)")
    args = p.parse_args(argv)
    names = {v: k for k, v in PARTS.items()}
    args.parts = set()
    for part in filter(None, (s.strip().lower() for s in args.only.split(","))):
        part = names.get(part, part)
        if part not in PARTS:
            p.error(f"--only: unknown part {part!r} (a, b, c or {', '.join(PARTS.values())})")
        args.parts.add(part)
    quick = args.quick
    args.steps = args.steps or 200
    args.records = args.records or (200_000 if quick else 1_000_000)
    args.lines = args.lines or (200_000 if quick else 1_000_000)
    args.repeat_a = args.repeat or (3 if quick else 9)
    args.repeat_b = args.repeat or (3 if quick else 4)
    args.repeat_c = args.repeat or (1 if quick else 3)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    started = time.monotonic()
    print("# bass builder benchmarks\n")
    print_machine()
    failures = Failures()
    sample = None
    with tempfile.TemporaryDirectory(prefix="bass-bench-") as tmp:
        for part in sorted(args.parts):
            part_started = time.monotonic()
            if part == "a":
                bench_overhead(args, Path(tmp), failures)
            elif part == "b":
                sample = bench_export(args, Path(tmp), failures)
            else:
                bench_logs(args, Path(tmp), failures, sample)
            print(f"({PARTS[part]}: {time.monotonic() - part_started:.0f} s)\n", flush=True)
    return failures.report(started)


if __name__ == "__main__":
    sys.exit(main())
