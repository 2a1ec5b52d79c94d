"""When one machine is not enough: where one `bass serve` and its SQLite file saturate.

    python -m bench.scale_bench [--quick] [--only builds,stores] [--concurrency 1,4,16]
                                [--builds-per-worker N] [--steps N] [--lines N]
                                [--stores 10000:10000000,10000:100000000,100000:100000000]
                                [--queries N] [--cache-dir DIR]

Run from the repository root with the Python that has bass installed (the test
virtualenv). Each part prints Markdown tables; ratios are against the first column
(1 concurrent build, the smallest store): a ratio survives a noisy machine where an
absolute figure does not.

(1) builds   a real ``bass serve --grpc-port 0`` (a fresh directory and SQLite file)
             and N real ``bass worker`` processes, each with its own workspace root, for
             N = 1, 4 and 16 concurrent builds. The pipeline is a local git repository
             whose build entry (``python job.py``, the builder) runs --steps steps (10)
             that each print --lines lines (1,000) of ~40 bytes with awk. Untimed first:
             builds until every worker has checked the repository out once. Then a
             closed loop keeps N builds in flight (``POST /api/pipelines/scale/builds``;
             a new one the moment one is seen ended, polled once every 0.1 s with one
             ``GET /api/pipelines/scale/builds``) until N × --builds-per-worker (10),
             at least 40, have ended. Measured, over the window first trigger → last
             build seen ended: builds/minute; pickup, trigger → the first step's span
             start (the builder's clock, the same machine), median and p95; a build's
             run, claimed → ended, median; OTLP records (spans + log records) stored
             per second (COUNT of the store before and after); from ``/metrics``, OTLP
             requests stored a second, their mean arrival → stored time
             (``bass_otlp_ingest_seconds``) and 503 answers (the store behind);
             ``bass serve``'s CPU (utime + stime from /proc/PID/stat, and its busiest
             thread's from /proc/PID/task) as cores used, its CPU a build, and the
             builds a minute one core of it would carry at that cost; the whole
             machine's busy and I/O-wait shares (/proc/stat, every process: other
             users of the machine included).
(2) stores   dashboard query p95 on stores of 10,000 and 100,000 builds, generated and
             cached by bench/ingest_bench.py's generator under --cache-dir (a new
             size takes a while: 100,000 builds and 100,000,000 log lines 20 min) and
             queried with its query plan: a fresh ``bass serve --db`` on each store,
             one client process (bench/otlp_client.py), --queries requests of every kind.

Correctness, checked: every build ends ``ok`` with all its steps ``ok``; every query
answers 200. A failed check makes the exit code 1. Nothing here is a target: the
tables are for README's scaling guide.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    REPO,
    Failures,
    bass_serve_on,
    child_env,
    count,
    http_get,
    megabytes,
    per_second,
    percentile,
    print_grid,
    print_machine,
    proc_cpu_seconds,
)
from bench.ingest_bench import KINDS, cached_store, plan_queries, read_through, stored_count
from bench.ingest_data import StorePlan
from bench.peer_bench import BenchError, Daemon, http_json, sigterm_unwinds

PIPELINE = "scale"
POLL = 0.1  # seconds between looks at the build list
BUILD_TIMEOUT = 600.0

# The build entry: `steps` steps, each printing `lines` lines of ~40 bytes with awk (a
# step costs its output, not an interpreter's start).
AWK = (
    "BEGIN {{ for (i = 1; i <= {lines}; i++)"
    ' printf "%06d compiling src/module_%03d.c ok\\n", i, i % 997 }}'
)
JOB = """\
from bass import build

build({{"name": "scale", "steps": [
    {{"name": f"step-{{n:02d}}", "exec": ["awk", {awk!r}]}} for n in range(1, {steps} + 1)
]}})
"""


def ms(value: float) -> str:
    if value != value:  # NaN: no sample
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def short(n: int) -> str:
    """10,000 → `10 k`, 100,000,000 → `100 M`."""
    for size, unit in ((1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:,.0f} {unit}" if n % size == 0 else f"{n / size:,.1f} {unit}"
    return f"{n:,}"


def times(value: float) -> str:
    return "—" if value != value else f"{value:.2f}×"


# -- (1) concurrent builds ------------------------------------------------------------------


def make_repository(path: Path, steps: int, lines: int) -> Path:
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "-C", str(path)]
    path.mkdir(parents=True)
    (path / "job.py").write_text(JOB.format(steps=steps, awk=AWK.format(lines=lines)))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "scale"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    return path


def machine_cpu() -> tuple[int, int, int]:
    """(busy, waiting for I/O, total) jiffies of every CPU since boot, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:
        # user nice system idle iowait irq softirq steal (guest time is in user already)
        fields = [int(x) for x in f.readline().split()[1:9]]
    iowait = fields[4] if len(fields) > 4 else 0
    return sum(fields) - fields[3] - iowait, iowait, sum(fields)


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (utime + stime) of each thread of a process, by thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


@dataclass
class Scrape:
    """What /metrics says so far about OTLP requests."""

    overloaded: int  # answered 503 (`bass_otlp_requests_total{result="overloaded"}`)
    stored: int  # requests whose records were stored
    storing_seconds: float  # their arrival → stored, summed

    @classmethod
    def of(cls, url: str) -> Scrape:
        sums: dict[str, float] = {}
        for line in http_get(f"{url}/metrics").decode().splitlines():
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name == "bass_otlp_requests_total" and 'result="overloaded"' not in line:
                continue
            if name.startswith(("bass_otlp_requests_total", "bass_otlp_ingest_seconds_")):
                sums[name] = sums.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        return cls(
            int(sums.get("bass_otlp_requests_total", 0)),
            int(sums.get("bass_otlp_ingest_seconds_count", 0)),
            sums.get("bass_otlp_ingest_seconds_sum", 0.0),
        )


def stored_records(db: Path) -> int:
    return stored_count(db, "traces") + stored_count(db, "logs")


@dataclass
class Level:
    """What one concurrency level measured."""

    concurrency: int
    builds: int = 0
    wall: float = float("nan")
    pickups: list[float] = field(default_factory=list)
    runs: list[float] = field(default_factory=list)
    records: int = 0
    overloaded: int = 0
    requests: int = 0  # OTLP requests stored
    storing: float = 0.0  # their arrival → stored, seconds summed
    serve_cpu: float = 0.0
    busiest_thread: float = 0.0  # CPU seconds of bass serve's busiest thread
    busy_share: float = float("nan")
    iowait_share: float = float("nan")

    @property
    def per_minute(self) -> float:
        return self.builds / self.wall * 60

    @property
    def records_per_second(self) -> float:
        return self.records / self.wall

    @property
    def serve_cores(self) -> float:
        return self.serve_cpu / self.wall

    @property
    def serve_cpu_per_build(self) -> float:
        return self.serve_cpu / self.builds

    @property
    def ceiling_per_minute(self) -> float:
        """Builds a minute one core of bass serve would carry at this cost a build."""
        return 60 / self.serve_cpu_per_build


class Cluster:
    """`bass serve` and N workers on this machine, each worker its own workspace."""

    def __init__(self, root: Path, serve_url: str, workers: int) -> None:
        self.root = root
        self.url = serve_url
        self.workers: list[Daemon] = []
        env = child_env()
        env.pop("BASS_API_KEY", None)  # loopback, no worker keys: none needed
        for i in range(workers):
            argv = [sys.executable, "-m", "bass", "worker", "-d", f"{serve_url}/dequeue"]
            argv += ["-w", str(root / f"ws{i}"), "--name", f"w{i}", "--log-level", "warning"]
            log = root / f"worker{i}.log"
            self.workers.append(Daemon.launch(f"bass worker {i}", argv, root, log, env))

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def check_alive(self) -> None:
        for worker in self.workers:
            worker.check_alive()

    def checked_out(self) -> bool:
        """Whether every worker's workspace holds a checkout of the pipeline."""
        return all(any((self.root / f"ws{i}" / "pipeline" / PIPELINE).glob("*/.git"))
                   for i in range(len(self.workers)))  # fmt: skip

    def trigger(self) -> tuple[int, int]:
        """Queue a build; (its id, the time just before the request, ns)."""
        at_ns = time.time_ns()
        answer = http_json("POST", f"{self.url}/api/pipelines/{PIPELINE}/builds", {})
        if not answer.get("queued"):
            raise BenchError(f"not queued: {answer}")
        return answer["id"], at_ns

    def recent(self) -> dict[int, dict]:
        """The newest builds of the pipeline, by id."""
        got = http_json("GET", f"{self.url}/api/pipelines/{PIPELINE}/builds?limit=100")
        return {b["id"]: b for b in got["builds"]}


def run_loop(cluster: Cluster, in_flight: int, total: int) -> tuple[dict[int, int], dict, float]:
    """Keep `in_flight` builds queued or running until `total` have ended; (trigger ns by
    build id, the ended builds by id, wall seconds first trigger → last seen ended)."""
    triggered: dict[int, int] = {}
    ended: dict[int, dict] = {}
    started = time.monotonic()
    deadline = started + BUILD_TIMEOUT
    while len(ended) < total:
        while len(triggered) - len(ended) < in_flight and len(triggered) < total:
            build_id, at_ns = cluster.trigger()
            triggered[build_id] = at_ns
        time.sleep(POLL)
        cluster.check_alive()
        for build_id, build in cluster.recent().items():
            if build_id in triggered and build_id not in ended:
                if build["state"] not in ("queued", "running"):
                    ended[build_id] = build
        if time.monotonic() > deadline:
            raise BenchError(f"{total - len(ended)} builds had not ended after {BUILD_TIMEOUT} s")
    return triggered, ended, time.monotonic() - started


def first_step_ns(url: str, number: int) -> int | None:
    """When the build's first step started (its span), ns since the epoch."""
    tree = http_json("GET", f"{url}/api/pipelines/{PIPELINE}/builds/{number}")["spans"]
    todo = list(tree)
    while todo:
        span = todo.pop()
        if span["name"] == "step-01":
            return span["start_ns"]
        todo.extend(span["children"])
    return None


def steps_ok(url: str, number: int) -> int:
    tree = http_json("GET", f"{url}/api/pipelines/{PIPELINE}/builds/{number}")["spans"]
    todo, ok = list(tree), 0
    while todo:
        span = todo.pop()
        ok += span["name"].startswith("step-") and span["attributes"].get("bass.status") == "ok"
        todo.extend(span["children"])
    return ok


def measure_level(args: argparse.Namespace, tmp: Path, repository: Path, n: int,
                  failures: Failures) -> Level:  # fmt: skip
    root = tmp / f"level-{n}"
    pipelines = {PIPELINE: {"repository": str(repository), "ref": "main",
                            "exec": [sys.executable, "job.py"]}}  # fmt: skip
    level = Level(n)
    with ExitStack() as stack:
        serve = stack.enter_context(
            bass_serve_on(root / "serve", pipelines=pipelines, extra_args=["--grpc-port", "0"])
        )
        cluster = Cluster(root, serve.url, n)
        stack.callback(cluster.stop)
        # Untimed: until every worker has cloned the repository (a first build's clone
        # is not a pickup), n builds in flight.
        while not cluster.checked_out():
            run_loop(cluster, n, n)
        total = max(n * args.builds_per_worker, args.min_builds)
        records_before = stored_records(serve.db)
        scrape_before = Scrape.of(serve.url)
        cpu_before = proc_cpu_seconds(serve.proc.pid)
        threads_before = thread_cpu(serve.proc.pid)
        busy_before = machine_cpu()
        triggered, ended, wall = run_loop(cluster, n, total)
        cpu_after = proc_cpu_seconds(serve.proc.pid)
        threads_after = thread_cpu(serve.proc.pid)
        busy_after = machine_cpu()
        level.builds = len(ended)
        level.wall = wall
        level.serve_cpu = cpu_after - cpu_before
        level.busiest_thread = max(
            t - threads_before.get(tid, 0.0) for tid, t in threads_after.items()
        )
        jiffies = max(1, busy_after[2] - busy_before[2])
        level.busy_share = (busy_after[0] - busy_before[0]) / jiffies
        level.iowait_share = (busy_after[1] - busy_before[1]) / jiffies
        level.records = stored_records(serve.db) - records_before
        scrape = Scrape.of(serve.url)
        level.overloaded = scrape.overloaded - scrape_before.overloaded
        level.requests = scrape.stored - scrape_before.stored
        level.storing = scrape.storing_seconds - scrape_before.storing_seconds
        for build_id, build in ended.items():
            what = f"(1) {n} concurrent: build #{build['number']}"
            if not failures.check(build["state"] == "ok", f"{what} ended {build['state']}"):
                continue
            ran = steps_ok(serve.url, build["number"])
            failures.check(ran == args.steps, f"{what}: {ran} of {args.steps} steps ok")
            first = first_step_ns(serve.url, build["number"])
            if failures.check(first is not None, f"{what}: no span step-01"):
                assert first is not None
                level.pickups.append((first - triggered[build_id]) / 1e9)
            if build.get("started_at") and build.get("finished_at"):
                level.runs.append(build["finished_at"] - build["started_at"])
    return level


def bench_builds(args: argparse.Namespace, tmp: Path, failures: Failures) -> list[Level]:
    repository = make_repository(tmp / "repository", args.steps, args.lines)
    levels = []
    for n in args.concurrency:
        started = time.monotonic()
        levels.append(measure_level(args, tmp, repository, n, failures))
        print(f"({n} concurrent: {time.monotonic() - started:.0f} s)", flush=True)
    print_levels(args, levels)
    return levels


def print_levels(args: argparse.Namespace, levels: list[Level]) -> None:
    base = levels[0]
    header = ["", *(f"{lv.concurrency} concurrent" for lv in levels)]
    if len(levels) > 1:
        header.append(f"{levels[-1].concurrency} ÷ {base.concurrency}")

    def line(what: str, value, shown) -> list[str]:  # noqa: ANN001
        cells = [shown(value(lv)) for lv in levels]
        if len(levels) > 1:
            first, last = value(base), value(levels[-1])
            cells.append(times(last / first) if first else "—")
        return [what, *cells]

    def p50(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    rows = [
        line("builds ended (all ok)", lambda lv: lv.builds, count),
        line("builds / minute", lambda lv: lv.per_minute, lambda v: f"{v:.0f}"),
        line("pickup median: trigger → first step running", lambda lv: p50(lv.pickups), ms),
        line("pickup p95", lambda lv: percentile(lv.pickups, 95), ms),
        line("a build's run (claimed → ended), median", lambda lv: p50(lv.runs), ms),
        line("OTLP records stored / s", lambda lv: lv.records_per_second, per_second),
        line("OTLP requests stored / s", lambda lv: lv.requests / lv.wall, lambda v: f"{v:.0f}"),
        line("… arrival → stored, mean", lambda lv: lv.storing / max(1, lv.requests), ms),
        line("OTLP requests answered 503 (store behind)", lambda lv: lv.overloaded, count),
        line("bass serve CPU, cores", lambda lv: lv.serve_cores, lambda v: f"{v:.2f}"),
        line(
            "… its busiest thread, cores",
            lambda lv: lv.busiest_thread / lv.wall,
            lambda v: f"{v:.2f}",
        ),
        line("bass serve CPU a build", lambda lv: lv.serve_cpu_per_build, ms),
        line(
            "builds / minute one core of bass serve carries (60 s ÷ CPU a build)",
            lambda lv: lv.ceiling_per_minute,
            lambda v: f"{v:.0f}",
        ),
        line(
            "machine busy (all processes, 2 cores = 100 %)",
            lambda lv: lv.busy_share,
            lambda v: f"{v * 100:.0f} %",
        ),
        line("machine waiting for I/O", lambda lv: lv.iowait_share, lambda v: f"{v * 100:.0f} %"),
    ]
    lines = args.steps * args.lines
    print_grid(
        f"(1) concurrent builds: {args.steps} steps × {args.lines:,} lines "
        f"({lines:,} lines, {lines * 41 / 1e6:.2f} MB of text a build)",
        header,
        rows,
        [
            f"N real `bass worker` processes for N concurrent builds, a closed loop keeping "
            f"N builds in flight until N × {args.builds_per_worker} (at least "
            f"{args.min_builds}) ended; each worker had "
            "checked the repository out once before (untimed)",
            "window: first trigger → last build seen ended (the build list polled every "
            f"{POLL:g} s); pickup: trigger → the first step's span start",
            "records: spans + log records stored in the window (a span sent at its start "
            "and again at its end is one record); CPU: utime + stime of bass serve over "
            "the window / its length",
            "the last column is the last level's figure / the first's",
        ],
    )


# -- (2) query latency by store size ------------------------------------------------------


@dataclass
class StoreRun:
    label: str
    builds: int
    records: int
    size: int
    p95: dict[str, float]
    generated: str


def query_store(args: argparse.Namespace, tmp: Path, builds: int, records: int,
                failures: Failures) -> StoreRun:  # fmt: skip
    """One round of ingest_bench's queries against a store of that size (cached, or
    generated into the cache now)."""
    sized = argparse.Namespace(builds=builds, records=records, cache_dir=args.cache_dir)
    started = time.monotonic()
    db, info, cached = cached_store(sized)
    generated = (
        f"cached (generated in {info.generation_seconds / 60:.0f} min)"
        if cached
        else f"generated now in {(time.monotonic() - started) / 60:.1f} min"
    )
    read_through(db)
    pipelines = {
        name: {"repository": f"https://git.example.com/team/{name}.git",
               "exec": ["python3", "job.py"]}
        for name in info.pipelines
    }  # fmt: skip
    queries = plan_queries(db, info, args.queries, seed=100)
    spec = tmp / "queries.json"
    with bass_serve_on(tmp / f"serve-{builds}-{records}", db=db, pipelines=pipelines,
                       extra_args=["--grpc-port", "0"]) as serve:  # fmt: skip
        spec.write_text(json.dumps({
            "port": int(serve.url.rsplit(":", 1)[1]),
            "warmup": [[q.kind, q.path] for q in queries[: 2 * len(KINDS)]],
            "requests": [[q.kind, q.path] for q in queries],
        }))  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-m", "bench.otlp_client", "get", str(spec)],
            cwd=REPO, env=child_env(), capture_output=True, check=True,
        )  # fmt: skip
    result = json.loads(proc.stdout)
    label = f"{short(builds)} builds, {short(records)} lines"
    for kind, answers in result["answers"].items():
        bad = {s: n for s, n in answers.items() if s != "200"}
        failures.check(not bad, f"(2) {label}, {kind}: answers {bad}: {result['errors'][:3]}")
    p95 = {kind: percentile(values, 95) for kind, values in result["latencies"].items()}
    return StoreRun(label, builds, info.records, info.bytes, p95, generated)


def bench_stores(args: argparse.Namespace, tmp: Path, failures: Failures) -> list[StoreRun]:
    runs = []
    for builds, records in args.store_sizes:
        started = time.monotonic()
        runs.append(query_store(args, tmp, builds, records, failures))
        print(f"({runs[-1].label}: {time.monotonic() - started:.0f} s)", flush=True)
    print_stores(args, runs)
    return runs


def print_stores(args: argparse.Namespace, runs: list[StoreRun]) -> None:
    base = runs[0]
    header = ["query, p95", *(r.label for r in runs)]
    if len(runs) > 1:
        header.append("last ÷ first")
    rows = []
    for kind, label in KINDS:
        label = label.replace("a build of BIG lines", "the largest builds")
        cells = [ms(r.p95.get(kind, float("nan"))) for r in runs]
        if len(runs) > 1:
            cells.append(times(runs[-1].p95[kind] / base.p95[kind]))
        rows.append([label, *cells])
    sizes = [megabytes(r.size) for r in runs]
    rows.append(["store size (database file)", *sizes, *([""] if len(runs) > 1 else [])])
    print_grid(
        f"(2) dashboard queries by store size: {args.queries} requests of each kind",
        header,
        rows,
        [
            "stores from bench/ingest_data.py's generator (20 pipelines, 10–20 step spans a "
            "build, Zipf-distributed words; 1 build in 1,000 is one of the largest): "
            + "; ".join(
                f"{r.label}: the largest builds "
                f"{StorePlan.sized(r.builds, r.records).big_lines:,} lines, {r.generated}"
                for r in runs
            ),
            "a fresh `bass serve --db` on each, the file read through once first (OS cache); "
            "requests from one client process over one keep-alive connection, kinds "
            "interleaved, random builds (bench/ingest_bench.py's query plan)",
        ],
    )


# -- the command ---------------------------------------------------------------------------

PARTS = ("builds", "stores")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.scale_bench",
        description="Where one bass serve saturates: concurrent builds, and dashboard "
        "queries by store size.",
    )
    p.add_argument("--quick", action="store_true", help="a ~1 minute smoke run")
    p.add_argument("--only", default=",".join(PARTS), help="parts: builds, stores")
    p.add_argument("--concurrency", default="1,4,16", help="(1) concurrent builds")
    p.add_argument("--builds-per-worker", type=int, help="(1) measured builds per worker "
                   "(default 10; quick 1)")  # fmt: skip
    p.add_argument("--steps", type=int, help="(1) steps a build (default 10; quick 5)")
    p.add_argument("--lines", type=int, help="(1) lines a step (default 1,000; quick 200)")
    p.add_argument(
        "--stores",
        help="(2) BUILDS:LINES,… (default 10000:10000000,10000:100000000,100000:100000000; "
        "quick 1000:500000)",
    )
    p.add_argument("--queries", type=int, help="(2) requests of each kind (default 60; quick 20)")
    p.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "bass-bench-cache"),
                   help="(2) where generated stores are kept (default %(default)s)")  # fmt: skip
    args = p.parse_args(argv)
    args.parts = {s.strip() for s in args.only.split(",") if s.strip()}
    if not args.parts <= set(PARTS):
        p.error(f"--only: parts are {', '.join(PARTS)}")
    quick = args.quick
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.builds_per_worker = args.builds_per_worker or (1 if quick else 10)
    args.min_builds = 1 if quick else 40  # windows of several seconds at every level
    args.steps = args.steps or (5 if quick else 10)
    args.lines = args.lines or (200 if quick else 1000)
    default = "1000:500000" if quick else "10000:10000000,10000:100000000,100000:100000000"
    args.store_sizes = [
        tuple(int(x) for x in size.split(":")) for size in (args.stores or default).split(",")
    ]
    args.queries = args.queries or (20 if quick else 60)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    started = time.monotonic()
    print("# bass serve at scale\n")
    print_machine()
    failures = Failures()
    try:
        with sigterm_unwinds(), tempfile.TemporaryDirectory(prefix="bass-scale-") as tmp:
            try:
                if "builds" in args.parts:
                    bench_builds(args, Path(tmp), failures)
                if "stores" in args.parts:
                    bench_stores(args, Path(tmp), failures)
            except BenchError as e:
                for log in sorted(Path(tmp).glob("**/*.log")):
                    print(f"\n--- {log.name} (end) ---\n{log.read_text(errors='replace')[-2000:]}")
                failures.check(False, str(e))
    except KeyboardInterrupt:
        print("\ninterrupted: every process the bench started is stopped", file=sys.stderr)
        return 130
    print("load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return failures.report(started)


if __name__ == "__main__":
    sys.exit(main())
