"""The dashboard: one module per resource, each exporting its `routes`; what they share
(templates, rendering, the status counters) is here. Route modules import this package
and `steps`, never each other."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from markupsafe import Markup, escape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from bass import ansi, states
from bass.auth import CSRF_COOKIE, same_secret
from bass.params import read_form
from bass.refs import redact_url, valid_changed_ref
from bass.store import builds as builds_store
from bass.store.builds import Source, state_counts
from bass.ui import steps

if TYPE_CHECKING:
    from starlette.templating import Jinja2Templates

PACKAGE_DIR = Path(__file__).resolve().parent.parent
FRAGMENT_HEADER = "x-bass-fragment"  # bass.js asks for a page's live part with it


class Templates:
    """The dashboard's templates, loaded at the first page rendered: jinja2 is over a
    megabyte of an idle server that only workers and builds talk to."""

    def __init__(self) -> None:
        self._jinja: Jinja2Templates | None = None

    def TemplateResponse(self, *args: Any, **kwargs: Any) -> Response:  # noqa: N802
        if self._jinja is None:
            self._jinja = _jinja()
        return self._jinja.TemplateResponse(*args, **kwargs)


def _jinja() -> Jinja2Templates:
    from starlette.templating import Jinja2Templates

    t = Jinja2Templates(directory=str(PACKAGE_DIR / "templates"))
    t.env.globals["duration"] = steps.duration
    t.env.globals["states"] = states
    t.env.filters["clock"] = _clock
    t.env.filters["iso"] = lambda ts: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    t.env.filters["ago"] = _ago
    t.env.filters["num"] = lambda n: f"{n:,}" if isinstance(n, int) else n
    t.env.filters["plain"] = ansi.plain
    t.env.filters["plain_lines"] = ansi.plain_lines
    t.env.filters["ansi_html"] = ansi.to_html
    t.env.filters["web_url"] = web_url
    t.env.filters["attr_value"] = attr_value
    t.env.filters["redact_url"] = redact_url
    t.env.globals["config_problem"] = config_problem
    t.env.globals["query_with"] = query_with
    t.env.globals["csrf_field"] = lambda request: Markup(
        f'<input type="hidden" name="csrf" value="{escape(csrf_token(request))}">'
    )
    return t


async def no_build(request: Request, name: str, number: int) -> HTTPException:
    """The 404 of a build that is not here: one retention removed says so, with its
    trace id (to look it up where telemetry is forwarded); else it never was."""
    gone = await request.state.db.aread(
        lambda conn: builds_store.pruned(conn, pipeline=name, number=number)
    )
    return HTTPException(404, pruned_text(gone) if gone else f"no build {name} #{number}")


def pruned_text(gone: dict[str, Any]) -> str:
    """What a page of a build retention removed says."""
    return (
        f"{gone['pipeline']} #{gone['number']} ({gone['state']}) was removed by retention "
        f"on {_clock(gone['pruned_at'])}; its trace id is {gone['trace_id']}: where bass "
        "forwards telemetry (Tempo, Loki), it is there by that id"
    )


def _clock(ts: float) -> str:
    """A moment as this server's clock reads it, with its time zone."""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ts))


def web_url(url: str | None) -> str | None:
    """`url` when it is an http(s) address a link may lead to, else None (a forge's
    compare URL is the sender's text: never a javascript: link)."""
    if isinstance(url, str) and url.lower().startswith(("https://", "http://")):
        return url
    return None


def _ago(ts: float | None) -> str:
    if not ts:
        return ""
    seconds = max(0, int(time.time() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def render(request: Request, full: str, partial: str, context: dict[str, Any]) -> Response:
    """The whole page, or only its live part when bass.js asks to refresh it: the page
    includes the same partial, so its markup exists once."""
    name = partial if request.headers.get(FRAGMENT_HEADER) == "1" else full
    context.setdefault("now_ns", time.time_ns())
    return request.state.templates.TemplateResponse(request, name, context)


async def check_form(request: Request) -> dict[str, str]:
    """The form a dashboard action posted, once its CSRF token (the double-submitted
    cookie bass.guard gives every browser) is checked: 403 otherwise. The gate has
    already refused other sites' pages; this also stops a form planted on this one."""
    form = await read_form(request)
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not same_secret(form.get("csrf", ""), expected):
        raise HTTPException(403, "the form is stale or not from this dashboard: reload the page")
    return form


def source_of_ref(ref: str | None) -> Source:
    """A build of `ref` (a branch, tag or commit), or of the pipeline's ref when empty;
    400 for something that is no ref name."""
    ref = (ref or "").strip()
    if not ref:
        return Source()
    if not valid_changed_ref(ref) or ".." in ref:
        raise HTTPException(400, f"not a branch, tag or commit: {ref!r:.80}")
    return Source(ref=ref)


def config_problem(request: Request) -> str | None:
    """What is wrong with the configuration files since their last edit (the last good
    configuration is in force meanwhile), or None."""
    status = getattr(request.state, "config_status", None)
    return status().get("error") if status is not None else None


def csrf_token(request: Request) -> str:
    """The value the dashboard's forms carry (templates: `csrf_field()`)."""
    return str(request.scope.get("bass.csrf", ""))


async def server_status(request: Request) -> dict[str, Any]:
    """Builds by state, the receiver's counters, the store's size: /status and
    /api/status. The counters come from the receiver through `ingest_status`, which
    create_app provides."""
    state = request.state
    counts = await state.db.aread(state_counts)
    return {
        "builds": counts,
        "config": state.config_status(),
        **state.ingest_status(),
        "store": {"path": str(state.db.path), "bytes": state.db.size()},
    }


def line_json(row: dict[str, Any]) -> dict[str, Any]:
    """A log line as the log viewer reads it (bass.js; /api/…/lines)."""
    return {
        "n": row["line"],
        "time_ms": row["time_ns"] // 1_000_000,
        "severity": row["severity_number"],
        "stream": row["stream"],
        "body": row["body"],
        "html": str(ansi.to_html(row["body"])),
    }


def query_with(request: Request, add: bool = False, **changes: Any) -> str:
    """This page's query with `changes` (None removes a parameter; `add` keeps a
    parameter's other values and adds this one), as "?…" for a link."""
    items = [(k, v) for k, v in request.query_params.multi_items() if k not in changes or add]
    items += [(k, str(v)) for k, v in changes.items() if v is not None]
    return "?" + urlencode(items) if items else "?"


def attr_value(value: Any) -> str:
    """An attribute's value as a person reads it: text as is, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
