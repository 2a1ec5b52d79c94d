"""The `bass` command: serve, worker, run, demo, watch."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time

from bass import config as config_files
from bass import logfmt, states
from bass.config import Settings

log = logging.getLogger("bass")

DEFAULTS = Settings()  # the one home of `bass serve`'s defaults
SERVER_URL = f"http://localhost:{DEFAULTS.port}"


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    d = DEFAULTS
    p = sub.add_parser("serve", help="run the orchestrator, OTLP receiver and dashboard")
    p.add_argument("--host", default=d.host, help="address to listen on (default %(default)s)")
    p.add_argument(
        "--port", type=int, default=d.port, help="port to listen on (default %(default)s)"
    )
    p.add_argument(
        "--grpc-port",
        type=int,
        default=d.grpc_port,
        help="port of the OTLP/gRPC receiver, on --host's address; 0: none (default %(default)s)",
    )
    p.add_argument("--db", default=d.db, help="SQLite file (default %(default)s)")
    p.add_argument(
        "-f",
        "--pipelines-file",
        default=d.pipelines_file,
        help="pipelines JSON (default %(default)s)",
    )
    p.add_argument(
        "-e",
        "--env-file",
        default=d.env_file,
        help="key=value variables handed to every build (default %(default)s)",
    )
    p.add_argument(
        "-w",
        "--worker-keys-file",
        default=d.worker_keys_file,
        help="worker API keys, one per line (default %(default)s)",
    )
    p.add_argument(
        "--users-file",
        default=d.users_file,
        help="people who may log in (bass user add NAME); without one, and bound to "
        "loopback, the dashboard is open (default %(default)s)",
    )
    p.add_argument(
        "--ingest-tokens-file",
        default=d.ingest_tokens_file,
        help="tokens (one per line, NAME: TOKEN) other services send OTLP with when "
        "this server is reachable from other machines (default %(default)s)",
    )
    p.add_argument(
        "--allowed-host",
        metavar="NAME",
        action="append",
        default=[],
        help="a host name requests may be addressed to, besides this machine's names, "
        "the bind address and the --public-url host; repeatable",
    )
    p.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        default=d.forwarded_allow_ips,
        help="comma-separated addresses of the proxies whose X-Forwarded-For/-Proto are "
        "believed (default: none, no proxy headers believed)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="serve a non-loopback address without a users file or worker keys",
    )
    p.add_argument(
        "--local-worker", action="store_true", help="also run a worker inside this process"
    )
    p.add_argument(
        "--local-worker-tags", default="", help="comma-separated tags of the local worker"
    )
    p.add_argument(
        "--workspace-root",
        default=d.workspace_root,
        help="where the local worker checks out repositories (default %(default)s)",
    )
    p.add_argument(
        "-t",
        "--traces-endpoint",
        default=d.traces_endpoint,
        help="OTLP traces URL handed to builds (default: this server's /v1/traces)",
    )
    p.add_argument(
        "-l",
        "--logs-endpoint",
        default=d.logs_endpoint,
        help="OTLP logs URL handed to builds (default: this server's /v1/logs)",
    )
    p.add_argument(
        "--lease-seconds",
        type=float,
        default=d.lease_seconds,
        help="a running build whose worker is silent this long ends as error (default %(default)s)",
    )
    p.add_argument(
        "--max-body-mb",
        type=float,
        default=d.max_body >> 20,
        help="largest OTLP request accepted, after decompression (default %(default)s)",
    )
    p.add_argument(
        "--max-inflight-mb",
        type=float,
        default=d.max_inflight >> 20,
        help="OTLP request bytes held at once, received and decompressed, by all clients "
        "together; past it 503 with Retry-After (default %(default)s)",
    )
    p.add_argument(
        "--retention-days",
        type=float,
        default=d.retention_days,
        help="prune ended builds (with their spans and logs), and other traces, older "
        "than this (default: keep everything)",
    )
    p.add_argument(
        "--keep-builds",
        type=int,
        default=d.keep_builds,
        help="keep only the newest N ended builds of each pipeline (a pipeline's "
        "keep-builds field overrides it)",
    )
    p.add_argument(
        "--forward-traces",
        metavar="URL",
        action="append",
        default=[],
        help="also send received spans, as OTLP/protobuf, to this URL (Tempo: "
        "http://HOST:4318/v1/traces); repeatable",
    )
    p.add_argument(
        "--forward-logs",
        metavar="URL",
        action="append",
        default=[],
        help="also send received log records, as OTLP/protobuf, to this URL (Loki: "
        "http://HOST:3100/otlp/v1/logs); repeatable",
    )
    p.add_argument(
        "--forward-queue-mb",
        type=float,
        default=d.forward_queue_bytes >> 20,
        help="OTLP requests waiting to be forwarded, kept in the database, all destinations "
        "together; past it the oldest are dropped and counted (default %(default)s)",
    )
    p.add_argument(
        "--forward-header",
        metavar="'NAME: VALUE'",
        action="append",
        default=[],
        help="header sent with every forwarded request (e.g. 'X-Scope-OrgID: team'); repeatable",
    )
    p.add_argument(
        "--smtp-host",
        default=d.smtp_host,
        help="SMTP server for the pipelines' e-mail notifications (default: none, no mail)",
    )
    p.add_argument(
        "--smtp-port", type=int, default=d.smtp_port, help="SMTP port (default %(default)s)"
    )
    p.add_argument(
        "--smtp-from", default=d.smtp_from, help="sender address (default bass@THIS-HOST)"
    )
    p.add_argument("--smtp-starttls", action="store_true", help="upgrade with STARTTLS")
    p.add_argument(
        "--smtp-user",
        default=d.smtp_user,
        help="log in as this user; the password comes from BASS_SMTP_PASSWORD",
    )
    p.add_argument(
        "--public-url",
        default=d.public_url,
        help="how people reach this server, for links in notifications (default http://HOST:PORT)",
    )
    p.add_argument(
        "--get",
        metavar="PATH",
        default=None,
        help="render one page in-process, print it and exit (a smoke test)",
    )
    p.add_argument(
        "--log-level", default=d.log_level, help="debug, info, warning (default %(default)s)"
    )
    _log_format_flag(p)


def _worker_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker",
        help="run builds handed out by a bass serve",
        description="The API key comes from the environment variable BASS_API_KEY.",
    )
    p.add_argument(
        "-d",
        "--dequeue-endpoint",
        default=f"{SERVER_URL}/dequeue",
        help="the orchestrator's dequeue URL (default %(default)s)",
    )
    p.add_argument("-t", "--tags", default="", help="comma-separated tags of this worker")
    p.add_argument(
        "-w",
        "--workspace-root",
        default=os.path.join(_tmp(), "bass-worker"),
        help="where repositories are checked out; one per worker (default %(default)s)",
    )
    p.add_argument("--name", default=None, help="worker name shown on builds (default host-pid)")
    p.add_argument(
        "--log-level", default=DEFAULTS.log_level, help="debug, info, warning (default %(default)s)"
    )
    _log_format_flag(p)


def _log_format_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-format",
        choices=logfmt.FORMATS,
        default=logfmt.DEFAULT_FORMAT,
        help="text, or json: one JSON object a line, for log shippers (default %(default)s)",
    )


def _run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="queue a build on a running bass serve")
    p.add_argument("pipeline")
    p.add_argument("--server", default=SERVER_URL, help="URL of bass serve (default %(default)s)")
    p.add_argument("--changed-refs", default="", help="comma-separated commits (or a..b)")
    p.add_argument("--tags", default="", help="comma-separated tags of the pushed commit")
    p.add_argument(
        "--ref", default="", help="a branch, tag or commit to build (default: the pipeline's ref)"
    )
    p.add_argument(
        "--wait", action="store_true", help="wait for the build to end; exit 0 only if it is ok"
    )
    p.add_argument(
        "--local",
        action="store_true",
        help="run the pipeline's build entry here, in this working copy, as a worker "
        "would (no queue, no worker); exit with the build's status",
    )
    p.add_argument(
        "--since", default=None, help="--local: the changeset is git diff --name-only REF"
    )
    _local_flags(p)


def _local_flags(p: argparse.ArgumentParser) -> None:
    """What `bass run --local` and `bass watch` read as `bass serve` would."""
    p.add_argument(
        "-f",
        "--pipelines-file",
        default=DEFAULTS.pipelines_file,
        help="the pipelines, for --local and watch (default %(default)s)",
    )
    p.add_argument(
        "-e",
        "--env-file",
        default=DEFAULTS.env_file,
        help="variables handed to the build entry, for --local and watch (default %(default)s)",
    )
    p.add_argument(
        "--offline", action="store_true", help="report to no bass serve (--local, watch)"
    )


def _watch_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "watch",
        help="run the build entry here, and again with the changed paths at every edit",
    )
    p.add_argument(
        "entry",
        nargs="*",
        metavar="ENTRY",
        help="the build entry's command (default: the pipelines file's pipeline, else job.py)",
    )
    p.add_argument(
        "--pipeline",
        default=None,
        help="which pipeline of the pipelines file; the builds' pipeline on the dashboard "
        "(default: the file's only one, else the working copy's name)",
    )
    p.add_argument(
        "--since", default=None, help="the first run's changeset: git diff --name-only REF"
    )
    p.add_argument(
        "--server",
        default=None,
        help="the bass serve each run is a local build on (default: this machine's, if "
        "one answers)",
    )
    p.add_argument(
        "--debounce",
        type=int,
        default=300,
        help="milliseconds edits may keep coming before a run starts (default %(default)s)",
    )
    _local_flags(p)


def _demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build the example pipelines on this machine, offline")
    p.add_argument("--dir", default="bass-demo", help="where the demo lives (default %(default)s)")
    p.add_argument(
        "--host", default=DEFAULTS.host, help="address to listen on (default %(default)s)"
    )
    p.add_argument(
        "--port", type=int, default=DEFAULTS.port, help="port to listen on (default %(default)s)"
    )
    p.add_argument(
        "--grpc-port",
        type=int,
        default=DEFAULTS.grpc_port,
        help="port of the OTLP/gRPC receiver; 0: none (default %(default)s)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="serve a non-loopback --host without users (anyone who reaches it can do all)",
    )


def _tmp() -> str:
    import tempfile

    return tempfile.gettempdir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bass", description="bass, a quite simple build assistant"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _worker_parser(sub)
    _run_parser(sub)
    _demo_parser(sub)
    _watch_parser(sub)
    arguments = sys.argv[1:] if argv is None else list(argv)
    if not arguments or arguments[0] not in ("serve", "worker", "run", "demo", "watch"):
        # `bass user`, `backup`, `restore`, `db` (or help, or a mistake): their modules
        # (bass.auth's hashing, the store's) are nothing a worker or `bass run` needs
        from bass import ops_cli, users_cli

        users_cli.add_parser(sub)
        ops_cli.add_parsers(sub)
    args = parser.parse_args(arguments)
    logfmt.setup(
        getattr(args, "log_level", "info"), getattr(args, "log_format", logfmt.DEFAULT_FORMAT)
    )
    if args.command == "serve":
        return serve(args)
    if args.command == "worker":
        return worker(args)
    if args.command == "run":
        if args.local:  # its modules (the worker's entry, git) only for a local run
            from bass import run_local

            return run_local.main(args)
        return run(args)
    if args.command == "watch":
        from bass import watch  # watchfiles and the local run: nothing a worker needs

        return watch.main(args)
    if args.command == "user":
        from bass import users_cli

        return users_cli.main(args)
    if args.command in ("backup", "restore", "db"):
        from bass import ops_cli

        return ops_cli.main(args)
    from bass.demo import demo

    return demo(args)


def _tags(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


def serve(args: argparse.Namespace) -> int:
    from bass.auth import UsersError
    from bass.config import Destination
    from bass.ingest.forward import Forwarder, parse_headers
    from bass.server import refuse_an_open_network, render_once, run_server

    settings = Settings(
        pipelines_file=args.pipelines_file,
        env_file=args.env_file,
        worker_keys_file=args.worker_keys_file,
        users_file=args.users_file,
        ingest_tokens_file=args.ingest_tokens_file,
        db=args.db,
        host=args.host,
        port=args.port,
        grpc_port=args.grpc_port,
        local_worker=args.local_worker,
        local_worker_tags=_tags(args.local_worker_tags),
        workspace_root=args.workspace_root,
        traces_endpoint=args.traces_endpoint,
        logs_endpoint=args.logs_endpoint,
        lease_seconds=args.lease_seconds,
        max_body=int(args.max_body_mb * (1 << 20)),
        max_inflight=int(args.max_inflight_mb * (1 << 20)),
        forward_queue_bytes=int(args.forward_queue_mb * (1 << 20)),
        retention_days=args.retention_days,
        keep_builds=args.keep_builds,
        smtp_host=args.smtp_host,
        smtp_port=args.smtp_port,
        smtp_from=args.smtp_from,
        smtp_starttls=args.smtp_starttls,
        smtp_user=args.smtp_user,
        smtp_password=os.environ.get("BASS_SMTP_PASSWORD"),
        public_url=args.public_url,
        allowed_hosts=args.allowed_host,
        forwarded_allow_ips=args.forwarded_allow_ips,
        insecure=args.insecure,
        log_level=args.log_level,
    )
    try:
        settings.load_files()
        headers = parse_headers(args.forward_header)
        settings.forward = [Destination("traces", url, headers) for url in args.forward_traces]
        settings.forward += [Destination("logs", url, headers) for url in args.forward_logs]
        for destination in settings.forward:
            Forwarder.check_url(destination.url)
        refuse_an_open_network(settings)
    except (config_files.ConfigError, UsersError, ValueError) as e:
        print(f"bass serve: {e}", file=sys.stderr)
        return 2
    config = settings.config
    log.info(
        "%d pipeline(s) from %s: %s",
        len(config.pipelines),
        settings.pipelines_file,
        ", ".join(config.pipelines) or "none",
    )
    log.info(
        "%d variable(s) from %s: %s",
        len(config.env),
        settings.env_file,
        ", ".join(config.env) or "none",
    )  # names only: values may be secrets
    log.info("%d worker key(s) from %s", len(config.worker_keys), settings.worker_keys_file)
    if args.get:
        return render_once(settings, args.get)
    return run_server(settings)


def worker(args: argparse.Namespace) -> int:
    from bass.refs import redact_urls
    from bass.worker import Worker, WorkspaceBusy

    api_key = os.environ.get("BASS_API_KEY")
    if not api_key:
        log.warning(
            "BASS_API_KEY is not set: only a bass serve without worker keys, on this "
            "machine, will hand out jobs"
        )
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: cancelling the running build and stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        Worker(
            dequeue_endpoint=args.dequeue_endpoint,
            api_key=api_key,
            tags=_tags(args.tags),
            workspace_root=args.workspace_root,
            name=args.name,
            stop=stop,
        ).run_forever()
    except WorkspaceBusy as e:
        print(f"bass worker: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # the dequeue endpoint
        print(f"bass worker: --dequeue-endpoint: {redact_urls(str(e))}", file=sys.stderr)
        return 2
    return 0


def run(args: argparse.Namespace) -> int:
    import urllib.error  # here, not at the top: a worker never needs urllib (its memory)
    import urllib.parse

    server = args.server.rstrip("/")
    query = {"pipeline": args.pipeline}
    if args.changed_refs:
        query["changed-refs"] = args.changed_refs
    if args.tags:
        query["tags"] = args.tags
    if args.ref:
        query["ref"] = args.ref
    url = f"{server}/webhook?{urllib.parse.urlencode(query)}"
    # an API token (bass user token) for a server with users or a pipeline with a secret
    token = os.environ.get("BASS_TOKEN")
    try:
        answer = _request("POST", url, token)
    except urllib.error.HTTPError as e:
        print(f"bass run: {e.code}: {e.read().decode('utf-8', 'replace')}", file=sys.stderr)
        return 2
    except urllib.error.URLError as e:
        print(f"bass run: cannot reach {server}: {e.reason}", file=sys.stderr)
        return 2
    if not answer.get("queued"):
        print(f"{args.pipeline}: not queued ({answer.get('reason')})")
        return 0
    print(f"{args.pipeline} #{answer['number']} queued: {answer['url']}")
    if not args.wait:
        return 0
    while True:
        build = _request("GET", f"{server}/api/builds/{answer['id']}", token)
        if build["state"] not in states.ACTIVE:
            print(
                f"{args.pipeline} #{build['number']}: {build['state']}"
                + (f" ({build['message']})" if build.get("message") else "")
            )
            return 0 if build["state"] == states.OK else 1
        time.sleep(0.5)


def _request(method: str, url: str, token: str | None = None) -> dict:
    import urllib.request

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


if __name__ == "__main__":
    sys.exit(main())
