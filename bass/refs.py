"""Git ref names as webhooks and `bass run` may send them (`changed-refs`), checked the
same way where they arrive (the webhook) and where they are used (the worker's git);
and repository URLs with their credentials hidden, wherever one is shown or logged."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

# A commit, branch or tag name; never an option ("-…") git would read as a flag.
REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/@^~+-]{0,250}$")

# scheme://USERINFO@ inside any text: the userinfo runs to the last "@" before the
# path, query, fragment or the end of the word (a password may hold an unescaped "@").
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*)://([^\s/?#'\"<>`]*)@")


def valid_changed_ref(ref: str) -> bool:
    """`rev` or `rev1..rev2`, each a plain ref name."""
    parts = ref.split("..")
    return len(parts) <= 2 and all(REF.match(p) for p in parts)


def redact_url(url: str) -> str:
    """Hide a password or token given in a repository URL (`https://TOKEN@host` too)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    user, _, host = parts.netloc.rpartition("@")  # as written: IPv6 keeps its brackets
    if parts.password is not None:
        user = f"{parts.username}:***"
    elif parts.scheme in ("http", "https"):
        user = "***"  # a token given as the user name
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


def redact_urls(text: str) -> str:
    """`redact_url` for every URL in a text (a command line, git's messages), by the
    same rule: `user:***@`, and `***@` for an http(s) user name with no password."""

    def hide(match: re.Match[str]) -> str:
        scheme, userinfo = match.group(1), match.group(2)
        if ":" in userinfo:
            userinfo = userinfo.partition(":")[0] + ":***"
        elif userinfo and scheme.lower() in ("http", "https"):
            userinfo = "***"
        return f"{scheme}://{userinfo}@"

    return _USERINFO.sub(hide, text) if "@" in text else text


def url_credentials(url: str) -> list[str]:
    """The secret part of a repository URL, as written and percent-decoded: the
    password, or the user name of an http(s) URL without one (a token). Whoever logs
    text that might hold it masks these values."""
    parts = urlsplit(url)
    if parts.password:
        secret = parts.password
    elif parts.username and parts.scheme in ("http", "https") and parts.password is None:
        secret = parts.username
    else:
        return []
    return list(dict.fromkeys([secret, unquote(secret)]))
