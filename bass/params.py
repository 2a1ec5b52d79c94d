"""Path parameters shared by the route modules: `{number:id}` is a build number or job
id that SQLite's INTEGER can hold (1 to 18 digits); a longer one is no route (404),
not an overflow in the store. Imported by every module that declares such a route."""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

MAX_ID = 2**63 - 1


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
