"""bass behind TLS, as README's "TLS in front: nginx or Caddy" sets it up: the shipped
deploy/nginx/bass.conf and deploy/caddy/Caddyfile, run by Debian's nginx and Caddy as
shipped but for their names, ports and paths, in front of a real `bass serve` on
loopback (a users file, worker keys, `--public-url https://…`, `--forwarded-allow-ips`).

Everything reaches bass through the proxy's https port: a real `bass worker` (trusting
the test's CA through SSL_CERT_FILE, as README tells) dequeues and reports a real build
of a real git repository, whose builder exports its spans and logs to the URLs bass
handed out; OTLP bodies over 1 MB, plain and gzip; OTLP/gRPC; a browser that logs in
and reads the build's log. Between the proxy and bass sits a relay that records what
the proxy sent (so a test can tell a request came through it) and can hold an answer
back after a marker: a client that reads the bytes before the marker while the rest is
held had them streamed, not buffered until the end. One bass, proxy and worker per
proxy (a module fixture), one build; each test checks one thing of it.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import gzip
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest

from bass.auth import Users
from bass.worker_api import MAX_WAIT
from tests.browser.pages import chromium
from tests.conftest import Repo, Server, WorkerProcess, free_port, terminate
from tests.e2e.waiting import wait_until

pytestmark = pytest.mark.browser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NGINX_CONF = DEPLOY / "nginx" / "bass.conf"
CADDYFILE = DEPLOY / "caddy" / "Caddyfile"
KEY = "key-1"
PASSWORD = "a long password"

# The step's 5,000th line: the last of the first page (a chunk) of its raw log download,
# after which the relay holds the download back.
MARKER = "held-here-0b7c"

JOB = r"""#!/usr/bin/env python3
from bass import build

build({"name": "app", "steps": [
    {"name": "say", "exec": "yes x | head -n 4999; echo MARKER; "
                            "for i in $(seq 1 300); do echo line $i; done; echo the last line"},
]})
""".replace("MARKER", MARKER)


class Relay:
    """A TCP relay from the proxy to bass serve. `to_bass` is every byte the proxy sent
    bass; `hold_after(marker)` makes the next answer that carries `marker` stop right
    after it (`held` is set) until `release()`."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # so that close() ends the accept loop
        self.port = self._listener.getsockname()[1]
        self.to_bass = bytearray()
        self.held = threading.Event()
        self._released = threading.Event()
        self._marker: bytes | None = None
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closing = False
        threading.Thread(target=self._accept, name="relay", daemon=True).start()

    def hold_after(self, marker: bytes) -> None:
        self._marker = marker

    def release(self) -> None:
        self._released.set()

    def saw(self, pattern: bytes) -> bool:
        with self._lock:
            return re.search(pattern, self.to_bass, re.IGNORECASE) is not None

    def close(self) -> None:
        self._closing = True
        self._released.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                proxy, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            proxy.settimeout(None)
            try:
                bass = socket.create_connection(self.target, timeout=10)
                bass.settimeout(None)
            except OSError:
                proxy.close()
                continue
            with self._lock:
                self._sockets += [proxy, bass]
            for target in (self._requests, self._answers):
                threading.Thread(target=target, args=(proxy, bass), daemon=True).start()

    def _requests(self, proxy: socket.socket, bass: socket.socket) -> None:
        try:
            while data := proxy.recv(65536):
                with self._lock:
                    self.to_bass += data
                bass.sendall(data)
        except OSError:
            pass
        _hang_up(bass)

    def _answers(self, proxy: socket.socket, bass: socket.socket) -> None:
        before = b""  # the end of what came before: a marker may span two reads
        try:
            while data := bass.recv(65536):
                marker = self._marker
                if marker is not None:
                    window = before + data
                    at = window.find(marker)
                    if at >= 0:
                        cut = at + len(marker) - len(before)
                        self._marker = None
                        self.held.set()  # before the marker goes on: then it is held
                        proxy.sendall(data[:cut])
                        self._released.wait(60)
                        data = data[cut:]
                    before = window[-len(marker) :]
                proxy.sendall(data)
        except OSError:
            pass
        _hang_up(proxy)


def _hang_up(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def certificates(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key): a CA made for this test, and a
    certificate it signed for localhost and 127.0.0.1."""
    directory.mkdir()
    ca_key, ca = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    extensions = directory / "server.ext"
    extensions.write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    new_key = ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for command in (
        [*new_key, "-keyout", ca_key, "-x509", "-days", "2", "-out", ca,
         "-subj", "/CN=bass test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [*new_key, "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial", "1",
         "-days", "2", "-extfile", extensions, "-out", cert],
    ):  # fmt: skip
        subprocess.run([str(arg) for arg in command], check=True, capture_output=True)
    return ca, cert, key


def configured(shipped: Path, replacements: list[tuple[str, str]]) -> str:
    """The shipped file with each (old, new) replaced; a file that no longer holds an
    `old` fails the test (this test runs what is shipped, nothing else)."""
    text = shipped.read_text()
    for old, new in replacements:
        assert old in text, f"{shipped} has no {old!r} any more: replace it here too"
        text = text.replace(old, new)
    return text


def loopback6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


class Proxy:
    """nginx or Caddy as a child process, configured from the shipped file, on loopback
    ports, its files in `home`; `url` is its https address. `start()` once bass's side
    is known; the `proxy` fixture stops it."""

    def __init__(self, kind: str, home: Path) -> None:
        self.kind, self.home = kind, home
        self.port, self.http_port = free_port(), free_port()
        self.url = f"https://localhost:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, upstream: int, grpc_port: int, cert: Path, key: Path) -> None:
        self.home.mkdir()
        paths = [("/etc/ssl/bass/fullchain.pem", str(cert)),
                 ("/etc/ssl/bass/privkey.pem", str(key)),
                 ("127.0.0.1:8080", f"127.0.0.1:{upstream}"),
                 ("127.0.0.1:4317", f"127.0.0.1:{grpc_port}")]  # fmt: skip
        env = {**os.environ, "HOME": str(self.home), "XDG_DATA_HOME": str(self.home / "data"),
               "XDG_CONFIG_HOME": str(self.home / "config")}  # fmt: skip
        command = self._nginx(paths) if self.kind == "nginx" else self._caddy(paths)
        with open(self.home / "proxy.log", "ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=self.home, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def _nginx(self, paths: list[tuple[str, str]]) -> list[str]:
        v6 = loopback6()
        ports = [("listen 80;", f"listen 127.0.0.1:{self.http_port};"),
                 ("listen [::]:80;", f"listen [::1]:{self.http_port};" if v6 else ""),
                 ("listen 443 ssl", f"listen 127.0.0.1:{self.port} ssl"),
                 ("listen [::]:443 ssl", f"listen [::1]:{self.port} ssl" if v6 else "#"),
                 ("server_name bass.example.com;", "server_name localhost;")]  # fmt: skip
        home = self.home
        (home / "bass.conf").write_text(configured(NGINX_CONF, ports + paths))
        # What Debian's /etc/nginx/nginx.conf wraps a site's file in, with this test's
        # paths (its workers run as this user: the temporary files are in tmp_path).
        (home / "nginx.conf").write_text(f"""
user {getpass.getuser()};
worker_processes 1;
pid {home}/nginx.pid;
error_log {home}/error.log notice;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    gzip on;
    access_log {home}/access.log;
    client_body_temp_path {home}/body;
    proxy_temp_path {home}/proxy;
    fastcgi_temp_path {home}/fastcgi;
    uwsgi_temp_path {home}/uwsgi;
    scgi_temp_path {home}/scgi;
    include {home}/bass.conf;
}}
""")
        return ["nginx", "-p", str(home), "-e", str(home / "error.log"),
                "-c", str(home / "nginx.conf"), "-g", "daemon off;"]  # fmt: skip

    def _caddy(self, paths: list[tuple[str, str]]) -> list[str]:
        ports = [("\thttp_port 80\n", f"\tdefault_bind 127.0.0.1\n\thttp_port {self.http_port}\n"),
                 ("https_port 443", f"https_port {self.port}"),
                 ("admin localhost:2019", f"admin localhost:{free_port()}"),
                 ("bass.example.com {", "localhost {")]  # fmt: skip
        (self.home / "Caddyfile").write_text(configured(CADDYFILE, ports + paths))
        return ["caddy", "run", "--config", str(self.home / "Caddyfile"), "--adapter", "caddyfile"]

    def output(self) -> str:
        logs = [self.home / "proxy.log", self.home / "error.log"]
        return "".join(f.read_text(errors="replace") for f in logs if f.exists())

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, 15)


class Client:
    """Requests to the proxy's https port, trusting the test's CA only."""

    def __init__(self, proxy: Proxy, ca: Path, token: str) -> None:
        self.url, self.port = proxy.url, proxy.port
        self.tls = ssl.create_default_context(cafile=str(ca))
        self.auth = {"Authorization": f"Bearer {token}"}

    def connect(self, source: str | None = None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "localhost", self.port, context=self.tls, timeout=30,
            source_address=(source, 0) if source else None,
        )  # fmt: skip

    def request(
        self, method: str, path: str, body: Any = None, headers: dict | None = None,
        source: str | None = None,
    ) -> tuple[int, Any, bytes]:  # fmt: skip
        """(status, headers, body); `path` may be a whole URL on the proxy; a `body`
        that is not bytes is sent as JSON."""
        if path.startswith(self.url + "/"):
            path = path[len(self.url) :]
        headers = dict(headers or {})
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = self.connect(source)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    def api(self, path: str) -> Any:
        status, _, body = self.request("GET", path, headers=self.auth)
        assert status == 200, body
        return json.loads(body)

    def healthy(self) -> bool:
        try:
            return self.request("GET", "/healthz")[0] == 200
        except OSError:
            return False


@dataclass
class Site:
    """bass behind one proxy, with a worker, after one build through it."""

    proxy: Proxy
    relay: Relay
    server: Server
    client: Client
    ca: Path
    build: dict[str, Any]
    worker_output: Callable[[], str]


@pytest.fixture(scope="module", params=["nginx", "caddy"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    if shutil.which(request.param) is None:
        pytest.skip(f"{request.param} is not installed (apt-get install -y {request.param})")
    root = tmp_path_factory.mktemp(request.param)
    ca, cert, key = certificates(root / "tls")
    repo = Repo(root / "repo")
    repo.commit({"job.py": JOB})
    entry = [sys.executable, "job.py"]
    users = Users(root / "serve" / "users.json")
    (root / "serve").mkdir()
    users.add("alice", PASSWORD)
    proxy, grpc_port = Proxy(request.param, root / "proxy"), free_port()
    server = Server(
        root / "serve",
        {"app": {"repository": str(repo.path), "exec": entry},
         "probe": {"repository": str(repo.path), "exec": entry, "worker-tags": ["probe"]}},
        keys=[KEY],
        extra=["--grpc-port", str(grpc_port), "--public-url", proxy.url,
               "--forwarded-allow-ips", "127.0.0.1"],
    )  # fmt: skip
    with contextlib.ExitStack() as stack:
        stack.callback(server.stop)
        server.start()
        relay = Relay(server.port)
        stack.callback(relay.close)
        stack.callback(proxy.stop)
        proxy.start(relay.port, grpc_port, cert, key)
        client = Client(proxy, ca, users.new_token("alice"))

        def ready() -> bool:
            assert proxy.proc is not None and proxy.proc.poll() is None, proxy.output()
            return client.healthy()

        wait_until(ready, "the proxy to answer over https", context=proxy.output)
        # The worker reaches bass only through the proxy, trusting the CA as README says.
        with pytest.MonkeyPatch.context() as env:
            env.setenv("SSL_CERT_FILE", str(ca))
            front = SimpleNamespace(url=proxy.url, key=KEY)  # what the worker is pointed at
            worker = WorkerProcess(front, root / "workspace")  # type: ignore[arg-type]
        stack.callback(worker.stop)
        status, _, body = client.request("POST", "/webhook?pipeline=app")
        queued = json.loads(body)
        assert status == 200 and queued["url"] == f"{proxy.url}/pipelines/app/1", body

        def ended() -> dict | None:
            build = client.api(f"/api/builds/{queued['id']}")
            return build if build["state"] not in ("queued", "running") else None

        build = wait_until(ended, "the build to end", context=worker.output)
        assert build is not None
        yield Site(proxy, relay, server, client, ca, build, worker.output)


def test_the_proxies_wait_longer_than_a_workers_long_poll() -> None:
    """A POST /dequeue may hang MAX_WAIT seconds; the proxy must not cut it short (too
    long to wait for in a test: read from the shipped files)."""
    nginx = NGINX_CONF.read_text()
    timeouts = re.findall(r"^\s*(?:proxy|grpc)_read_timeout\s+(\d+)s;", nginx, re.MULTILINE)
    assert len(timeouts) == 2 and all(int(t) > MAX_WAIT for t in timeouts), timeouts
    settings = [line for line in CADDYFILE.read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]  # fmt: skip
    assert not [line for line in settings if "timeout" in line], "Caddy has none by default"


def test_plain_http_is_sent_to_https(site: Site) -> None:
    port = site.proxy.http_port
    plain = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    plain.request("GET", "/pipelines/app?x=1", headers={"Host": f"localhost:{port}"})
    answer = plain.getresponse()
    plain.close()
    location = urlsplit(answer.headers["Location"] or "")
    assert answer.status in (301, 308), answer.status
    assert (location.scheme, location.hostname, location.path, location.query) == (
        "https", "localhost", "/pipelines/app", "x=1")  # fmt: skip


def test_a_worker_reaching_bass_only_through_the_proxy_builds(site: Site) -> None:
    """Its dequeue and result, and the builder's OTLP to the endpoints bass handed out,
    all went through the proxy, over https."""
    assert site.build["state"] == "ok", site.worker_output() + site.server.output()
    tail = site.client.api("/api/pipelines/app/builds/1/logs?tail=1&limit=400")["logs"]
    lines = [r["body"] for r in tail]
    assert MARKER in lines and "line 300" in lines and "the last line" in lines, lines
    for request in (rb"POST /dequeue", rb"POST /jobs/\d+/result", rb"POST /v1/traces",
                    rb"POST /v1/logs"):  # fmt: skip
        through = request + rb" HTTP/1\.1\r\n(?:[^\r\n]+\r\n)*?x-forwarded-proto: https\r\n"
        assert site.relay.saw(through), f"{request!r} did not come through the proxy"


def test_bass_sees_the_clients_address_and_scheme(site: Site) -> None:
    """The client's own address, not one it claims (a prototype-style dequeue, without
    "worker", is named after it); URLs that lead back through the proxy; cookies for
    https only."""
    client, url = site.client, site.proxy.url
    status, _, body = client.request("POST", "/webhook?pipeline=probe")
    assert status == 200, body
    status, _, body = client.request(
        "POST", "/dequeue", {"tags": ["probe"]},
        {"X-API-KEY": KEY, "X-Forwarded-For": "203.0.113.9"}, source="127.0.0.2",
    )  # fmt: skip
    assert status == 200, body
    job = json.loads(body)
    assert job["otel"]["traces-endpoint"] == f"{url}/v1/traces"
    assert job["otel"]["logs-endpoint"] == f"{url}/v1/logs"
    assert job["build-url"] == f"{url}/pipelines/probe/{job['number']}"
    assert client.api(f"/api/builds/{job['id']}")["worker"] == "127.0.0.2"
    status, _, body = client.request(
        "POST", job["result-url"], {"status": "ok"},
        {"X-API-KEY": KEY, "Authorization": f"Bearer {job['job-token']}"},
    )  # fmt: skip
    assert status == 200, body
    status, headers, _ = client.request("GET", "/login")
    cookies = headers.get_all("Set-Cookie") or []
    assert cookies and all("Secure" in c.split("; ") for c in cookies), cookies


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_otlp_bodies_over_a_megabyte_arrive_whole(site: Site, encoding: str) -> None:
    trace_id = os.urandom(16).hex()
    texts = [base64.b64encode(os.urandom(750)).decode() for _ in range(1500)]
    records = [{"traceId": trace_id, "spanId": "ab" * 8, "body": {"stringValue": t}}
               for t in texts]  # fmt: skip
    otlp = json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}).encode()
    otlp = gzip.compress(otlp) if encoding == "gzip" else otlp
    assert len(otlp) > 1 << 20  # on the wire
    # behind a declared proxy bass is a network server: another service's OTLP needs a
    # token (an ingest token, or a person's API token as here)
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    status, _, body = site.client.request("POST", "/v1/logs", otlp, headers | site.client.auth)
    assert status == 200, body
    stored = site.server.query("SELECT body FROM logs WHERE trace_id = ? ORDER BY id", trace_id)
    assert [row[0] for row in stored] == texts, f"{len(stored)} stored"


def test_otlp_grpc_on_the_https_port(site: Site) -> None:
    trace_id = export_a_span_over_grpc(site.proxy, site.ca, site.client.auth["Authorization"])
    names = site.server.query("SELECT name FROM spans WHERE trace_id = ?", trace_id)
    assert [row[0] for row in names] == ["via grpc"]


def test_the_raw_log_streams(site: Site) -> None:
    """Its first page (one chunk) arrives while the relay holds the rest back. The page
    is small (10 kB) and ends with the marker: a proxy that buffers would hold at least
    its last bytes until the answer ended."""
    client = site.client
    tail = client.api("/api/pipelines/app/builds/1/logs?tail=1&limit=400")["logs"]
    say = next(r["span_id"] for r in tail if r["body"] == MARKER)  # the step's span
    site.relay.hold_after(f"{MARKER}\n\r\n".encode())  # the end of the chunk's data
    stream = client.connect()
    stream.request("GET", f"/pipelines/app/1/log?span={say}", headers=client.auth)
    response = stream.getresponse()
    assert response.status == 200
    first = b""
    try:
        while MARKER.encode() not in first:
            chunk = response.read1(65536)
            assert chunk, f"the log ended before {MARKER}: {first[-200:]!r}"
            first += chunk
    except TimeoutError:
        raise AssertionError(f"the proxy held the log back: {first[-200:]!r}") from None
    finally:
        held = site.relay.held.is_set()
        site.relay.release()
    assert held
    whole = (first + response.read()).decode()
    stream.close()
    after = "".join(f"line {i}\n" for i in range(1, 301)) + "the last line\n"
    assert whole == "x\n" * 4999 + f"{MARKER}\n" + after, whole[-300:]


def test_a_person_logs_in_and_reads_the_builds_log(site: Site) -> None:
    url = site.proxy.url
    with chromium() as browser:
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        page.goto(url + "/")
        page.get_by_label("User").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.locator('tr.pipeline[data-pipeline="app"] a', has_text="#1").click()
        page.wait_for_url(f"{url}/pipelines/app/1")
        step = page.locator('li.step[data-step="say"]')
        step.locator("summary").first.click()
        step.locator(".lv-line", has_text="the last line").wait_for(timeout=30000)
        session = [c for c in context.cookies() if c["name"] == "bass_session"]
        assert session and session[0]["secure"], context.cookies()
        context.close()


def export_a_span_over_grpc(proxy: Proxy, ca: Path, authorization: str) -> str:
    """Send one span over OTLP/gRPC to the proxy's https port; its trace id."""
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    trace_id = os.urandom(16)
    now = time.time_ns()
    span = Span(trace_id=trace_id, span_id=os.urandom(8), name="via grpc",
                start_time_unix_nano=now, end_time_unix_nano=now + 1000)  # fmt: skip
    request = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])]
    )
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    with grpc.secure_channel(f"localhost:{proxy.port}", credentials) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        stub.Export(request, timeout=30, metadata=[("authorization", authorization)])
    return trace_id.hex()
