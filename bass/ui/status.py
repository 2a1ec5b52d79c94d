"""/status : what the server received, forwarded and holds."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bass.ui import render, server_status


async def status(request: Request) -> Response:
    return render(request, "status.html", "status.html", await server_status(request))


routes = [Route("/status", status, methods=["GET"], name="status")]
