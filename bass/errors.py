"""One way a request fails: a route raises Starlette's `HTTPException(status, message)`
(with `headers=` for Retry-After or Allow), and the handler create_app registers answers
in the form the caller reads:

- OTLP (`/v1/…`): a google.rpc.Status, in the request's encoding (protobuf or JSON), as
  the OTLP specification asks;
- the JSON APIs (workers, webhooks, `/pipelines`, `/api/…`): `{"error": message}`;
- the dashboard: its styled page saying what went wrong.

Unmatched paths (404) and wrong methods (405) take the same way.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bass.ingest import wire

__all__ = ["HTTPException", "EXCEPTION_HANDLERS"]

JSON_PREFIXES = ("/api/", "/jobs/", "/webhook", "/dequeue", "/healthz", "/static/")
JSON_PATHS = ("/pipelines", "/pipelines/")  # the prototype's list of pipelines
# google.rpc.Status codes: 3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE,
# 12 UNIMPLEMENTED (a method OTLP does not have)
_RPC_CODES = {405: 12, 413: 8, 429: 8, 503: 14}
_TITLES = {400: "Bad request", 403: "Refused", 404: "Not found", 405: "Method not allowed"}


async def answer(request: Request, exc: Exception) -> Response:
    """The response for an HTTPException raised anywhere in the app."""
    assert isinstance(exc, HTTPException)
    status, message, headers = exc.status_code, str(exc.detail), dict(exc.headers or {})
    path = request.url.path
    if path.startswith("/v1/"):
        code = _RPC_CODES.get(status, 3)
        if request.headers.get("content-type", "").lower().startswith(wire.PROTOBUF):
            body = wire.status(code, message)
            return Response(body, status, headers, media_type=wire.PROTOBUF)
        body = json.dumps({"code": code, "message": message}).encode()
        return Response(body, status, headers, media_type="application/json")
    if path in JSON_PATHS or path.startswith(JSON_PREFIXES):
        return JSONResponse({"error": message}, status, headers)
    templates = getattr(request.state, "templates", None)
    if templates is None:  # before the app has started: no page to render with
        return JSONResponse({"error": message}, status, headers)
    if status == 404 and message == "Not Found":  # no route: say what was asked for
        message = f"There is no page at {path}."
    context = {"title": _TITLES.get(status, "Error"), "message": message, "status": status}
    return templates.TemplateResponse(request, "error.html", context, status, headers)


EXCEPTION_HANDLERS = {HTTPException: answer}
