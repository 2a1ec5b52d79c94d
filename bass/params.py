"""What the routes read from a request, checked: `{number:id}` path parameters (a build
number or id that SQLite's INTEGER can hold, 1 to 18 digits; a longer one is no route,
404, not an overflow in the store), numbers in query strings, JSON object bodies.
Imported by every module that declares an `{…:id}` route."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request

MAX_ID = 2**63 - 1
MAX_JSON_BODY = 1 << 20  # webhook and worker requests are small


class IdConvertor(Convertor[int]):
    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(int(value))


register_url_convertor("id", IdConvertor())


def number(value: str | None) -> int | None:
    """A query parameter as a non-negative number the store can hold, else None (ASCII
    digits only: "²".isdigit(), but int("²") fails)."""
    if value and value.isascii() and value.isdigit() and int(value) <= MAX_ID:
        return int(value)
    return None


def query_int(request: Request, name: str, default: int, top: int) -> int:
    """A query parameter as a number up to `top` (larger ones are cut to it), `default`
    when absent; 400 when it is not a non-negative integer."""
    value = request.query_params.get(name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()):  # "²".isdigit(), but int("²") fails
        raise HTTPException(400, f"{name} must be a non-negative integer")
    return min(int(value), top)


async def read_body(request: Request, limit: int = MAX_JSON_BODY) -> bytes:
    """The request's body, 413 past `limit` bytes (never more is held)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"body larger than {limit} bytes")
    return body


def json_object(body: bytes, *, required: bool) -> dict[str, Any]:
    """A JSON object body ({} when empty and not required); 400 when it is not one."""
    if not body.strip():
        if required:
            raise HTTPException(400, "a JSON object body is required")
        return {}
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise HTTPException(400, f"malformed JSON body: {e}") from None
    except RecursionError:
        raise HTTPException(400, "malformed JSON body: nested too deeply") from None
    if not isinstance(payload, dict):
        raise HTTPException(400, "the JSON body must be an object")
    try:  # JSON can spell a lone surrogate ("\ud800"); no UTF-8 text, so no SQLite row, can
        json.dumps(payload, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise HTTPException(400, "malformed JSON body: a string holds a lone surrogate") from None
    except RecursionError:
        raise HTTPException(400, "malformed JSON body: nested too deeply") from None
    return payload


async def read_json(request: Request, *, required: bool) -> dict[str, Any]:
    """The request's JSON object body (see json_object), at most MAX_JSON_BODY bytes."""
    return json_object(await read_body(request), required=required)


async def read_form(request: Request) -> dict[str, str]:
    """A small url-encoded form (the dashboard's own), as the last value of each field;
    400 past MAX_JSON_BODY bytes or for another encoding."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BODY:
            raise HTTPException(413, f"form larger than {MAX_JSON_BODY} bytes")
    if body and kind != "application/x-www-form-urlencoded":
        raise HTTPException(415, "send the form url-encoded")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "the form is not UTF-8") from None
    return dict(parse_qsl(text, keep_blank_values=True))


def string_list(value: Any, name: str) -> list[str]:
    """A list of strings, or a comma-separated string, as a list (400 otherwise)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.split(",") if v]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v for v in value if v]
    raise HTTPException(400, f'"{name}" must be a list of strings or a comma-separated string')


def people_base_url(request: Request) -> str:
    """The base of links meant for people: --public-url when it is set, else the
    (allowed) host the request came to."""
    return str(request.scope.get("bass.public_base") or request.base_url).rstrip("/")
