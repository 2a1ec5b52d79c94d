"""/login and /logout: a person's session, when the users file asks people to log in."""

from __future__ import annotations

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bass import auth
from bass.auth import SESSION_COOKIE
from bass.ui import check_form


def _local(target: str | None) -> str:
    """Where to go after logging in: a path on this server, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def login_page(request: Request) -> Response:
    people: auth.People = request.state.people
    if not people.login_required:
        return RedirectResponse("/", status_code=303)
    context = {"next": _local(request.query_params.get("next")), "failed": False}
    return request.state.templates.TemplateResponse(request, "login.html", context)


async def login(request: Request) -> Response:
    people: auth.People = request.state.people
    form = await check_form(request)
    name, password = form.get("user", ""), form.get("password", "")
    users = people.users
    # scrypt takes ~50 ms of CPU: never on the event loop
    ok = users is not None and await to_thread.run_sync(users.authenticate, name, password)
    if not ok or users is None:
        context = {"next": _local(form.get("next")), "failed": True, "user": name}
        return request.state.templates.TemplateResponse(
            request, "login.html", context, status_code=401
        )
    response = RedirectResponse(_local(form.get("next")), status_code=303)
    value = auth.session_value(people.key, users, name)
    response.headers.append(
        "set-cookie", people.cookie(SESSION_COOKIE, value, "Lax", auth.SESSION_SECONDS)
    )
    return response


async def logout(request: Request) -> Response:
    people: auth.People = request.state.people
    await check_form(request)
    response = RedirectResponse("/login", status_code=303)
    response.headers.append("set-cookie", people.cookie(SESSION_COOKIE, "", "Lax", 0))
    return response


routes = [
    Route("/login", login_page, methods=["GET"], name="login"),
    Route("/login", login, methods=["POST"], name="login_post"),
    Route("/logout", logout, methods=["POST"], name="logout"),
]
