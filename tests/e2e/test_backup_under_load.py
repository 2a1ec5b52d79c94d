"""`bass backup` while a real `bass serve` takes a steady OTLP load (a client POSTing log
records and spans, one request after another): the backup finishes, opens and passes
`bass db check`, and a fresh `bass serve` started on it after `bass restore` answers
every record the first server acknowledged (200) before the backup started. `bass
restore` refuses a database a running server has open, and changes nothing then."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import Server, http
from tests.e2e.waiting import wait_until

TRACE = "5" * 32
SPAN = "6" * 16


def bass(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bass", *args], capture_output=True, text=True, timeout=120
    )


def _post(url: str, payload: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as e:
        with e:
            return e.code  # 503 when the store is behind: not acknowledged, not counted


class Load(threading.Thread):
    """POSTs record n (a log line and a span) for n = 1, 2, … until stopped; `acked`
    holds each n both requests of which were answered 200, in order."""

    def __init__(self, server: Server):
        super().__init__(name="otlp-load", daemon=True)
        self.server = server
        self.acked: list[int] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                record = {"timeUnixNano": str(n), "body": {"stringValue": f"line {n}"},
                          "traceId": TRACE, "spanId": SPAN}  # fmt: skip
                span = {"traceId": TRACE, "spanId": f"{n:016x}", "name": f"span {n}",
                        "startTimeUnixNano": str(n), "endTimeUnixNano": str(n + 1)}  # fmt: skip
                logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
                spans = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
                logs_status = _post(f"{self.server.url}/v1/logs", logs)
                spans_status = _post(f"{self.server.url}/v1/traces", spans)
                if logs_status == spans_status == 200:
                    self.acked.append(n)
        except BaseException as e:  # the test reports it
            self.error = e


def _stored(server: Server) -> tuple[set[str], set[str]]:
    """(log bodies, span ids) of TRACE, read through the server's JSON API."""
    status, body = http("GET", f"{server.url}/api/traces/{TRACE}/logs?limit=10000")
    assert status == 200, body
    lines = {r["body"] for r in body["logs"]}
    status, body = http("GET", f"{server.url}/api/traces/{TRACE}")
    assert status == 200, body
    return lines, {s["span_id"] for s in body["spans"]}


def test_a_backup_under_load_restores_every_acknowledged_record(serve: Any, tmp_path: Path) -> None:
    server = serve({})
    load = Load(server)
    load.start()
    try:
        wait_until(lambda: len(load.acked) >= 200, "200 records acknowledged",
                   context=server.output)  # fmt: skip
        acked_before = list(load.acked)  # every one of these was answered 200 by now
        backup = tmp_path / "backups" / "bass-backup.db"
        backup.parent.mkdir()
        made = bass("backup", str(backup), "--db", str(server.db))
        assert made.returncode == 0, made.stderr
        assert f"→ {backup}" in made.stdout and "checked ok" in made.stdout
        assert made.stderr == ""  # no terminal: no progress lines
        # the load went on during the backup and after it: the server was never paused
        after = len(load.acked)
        wait_until(lambda: len(load.acked) >= after + 20, "the load going on",
                   context=server.output)  # fmt: skip
    finally:
        load.stop.set()
        load.join()
    assert load.error is None, load.error
    assert sorted(p.name for p in backup.parent.iterdir()) == [backup.name]  # no temp files

    checked = bass("db", "check", "--db", str(backup))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.rstrip().endswith("healthy")

    fresh = Server(tmp_path / "restored", {})
    restored = bass("restore", str(backup), "--db", str(fresh.db))
    assert restored.returncode == 0, restored.stderr
    assert "kept" not in restored.stdout  # there was nothing to keep
    fresh.start()
    try:
        lines, span_ids = _stored(fresh)
        assert {f"line {n}" for n in acked_before} <= lines
        assert {f"{n:016x}" for n in acked_before} <= span_ids
        # and it takes more
        record = {"timeUnixNano": "1", "body": {"stringValue": "after the restore"},
                  "traceId": TRACE, "spanId": SPAN}  # fmt: skip
        payload = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
        assert _post(f"{fresh.url}/v1/logs", payload) == 200
        assert "after the restore" in _stored(fresh)[0]
    finally:
        fresh.stop()


def test_restore_is_refused_while_a_server_has_the_database_open(
    serve: Any, tmp_path: Path
) -> None:
    server = serve({})
    status, _ = http("GET", f"{server.url}/api/status")  # the server has read its database
    assert status == 200
    backup = tmp_path / "backup.db"
    assert bass("backup", str(backup), "--db", str(server.db)).returncode == 0
    before = sorted(p.name for p in server.home.iterdir())
    size = server.db.stat().st_size

    refused = bass("restore", str(backup), "--db", str(server.db))

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.count("\n") == 1 and "in use" in refused.stderr
    assert str(server.db) in refused.stderr
    assert refused.stdout == ""
    assert sorted(p.name for p in server.home.iterdir()) == before  # nothing moved or left
    assert server.db.stat().st_size == size
    assert http("GET", f"{server.url}/healthz")[0] == 200

    server.stop()  # stopped, the same restore goes through and keeps what it replaced
    done = bass("restore", str(backup), "--db", str(server.db))
    assert done.returncode == 0, done.stderr
    (kept,) = server.home.glob("bass.db.before-restore-*")
    assert f"kept as {kept}" in done.stdout
