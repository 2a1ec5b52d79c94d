"""People: the users file, passwords, API tokens and signed session cookies.

The users file (`--users-file`, default `users.json`) is written by `bass user …` and
read by `bass serve`, again whenever it changes. It holds, per user, a salted scrypt
hash of the password and the SHA-256 of each API token; never a password or a token.
A session cookie is signed with the server's secret key (a file beside the database)
and names the user and a fingerprint of the password hash: changing the password or
removing the user ends every session. SECURITY.md states the model.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SESSION_COOKIE = "bass_session"
CSRF_COOKIE = "bass_csrf"  # double submit: the dashboard's forms carry the same value
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
SESSION_SECONDS = 14 * 86400
# scrypt: 2^14 rounds, 16 MiB, ~50 ms a check here: slow for guessing, fine for a login
_N, _R, _P = 1 << 14, 8, 1
_TOKEN = re.compile(r"^bass_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")


class UsersError(Exception):
    """The users file is unreadable or a request to change it is wrong."""


def same_secret(given: str, expected: str) -> bool:
    """Whether two secrets are equal, in constant time, whatever characters a caller put
    in `given` (hmac.compare_digest refuses str with non-ASCII: a 500 before)."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Whether `password` matches a hash made by hash_password (constant time)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        given = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, OverflowError, MemoryError):
        return False
    return hmac.compare_digest(given, bytes.fromhex(digest))


@functools.cache
def _dummy_hash() -> str:
    """What an unknown name's password is checked against, so it costs as much as a
    known one's; made at the first login, not at every start (an scrypt, 16 MiB)."""
    return hash_password(secrets.token_hex(8))


class Users:
    """The users file, read again when it changes on disk."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._users: dict[str, dict[str, Any]] = {}

    # -- reading ---------------------------------------------------------------------

    def _current(self) -> dict[str, dict[str, Any]]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        # a rewrite is a new inode (os.replace): two in the same clock tick still differ
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._users = _read(self.path)
                self._stamp = stamp
            return self._users

    def any(self) -> bool:
        """Whether there is at least one user (then people must log in)."""
        return bool(self._current())

    def names(self) -> list[str]:
        return sorted(self._current())

    def authenticate(self, name: str, password: str) -> bool:
        """Name and password right? Costs one scrypt either way (no timing oracle)."""
        user = self._current().get(name)
        stored = user["password"] if user else _dummy_hash()
        return check_password(password, stored) and user is not None

    def token_user(self, token: str) -> str | None:
        """The user an API token belongs to, or None."""
        match = _TOKEN.match(token)
        if not match:
            return None
        token_id, _ = match.groups()
        digest = hashlib.sha256(token.encode()).hexdigest()
        for name, user in self._current().items():
            known = user.get("tokens", {}).get(token_id)
            if known and same_secret(str(known.get("sha256")), digest):
                return name
        return None

    def fingerprint(self, name: str) -> str | None:
        """A short digest of the user's password hash: in the session, it ends every
        session when the password changes or the user goes."""
        user = self._current().get(name)
        if user is None:
            return None
        return hashlib.sha256(user["password"].encode()).hexdigest()[:16]

    # -- changing (bass user …) -------------------------------------------------------

    def add(self, name: str, password: str) -> None:
        """Add a user, or set a user's password."""
        if not USER_NAME.match(name):
            raise UsersError(
                f"{name!r}: a user name is letters, digits, '.', '_', '@' and '-' (up to 64)"
            )
        if len(password) < 8:
            raise UsersError("a password has at least 8 characters")
        users = _read(self.path)
        users.setdefault(name, {"tokens": {}})["password"] = hash_password(password)
        _write(self.path, users)

    def remove(self, name: str) -> None:
        users = _read(self.path)
        if users.pop(name, None) is None:
            raise UsersError(f"no user {name!r} in {self.path}")
        _write(self.path, users)

    def new_token(self, name: str, label: str = "") -> str:
        """A new API token for `name`: returned once, stored only as its SHA-256."""
        users = _read(self.path)
        if name not in users:
            raise UsersError(f"no user {name!r} in {self.path}")
        token_id = secrets.token_hex(6)
        token = f"bass_{token_id}_{secrets.token_urlsafe(32)}"
        users[name].setdefault("tokens", {})[token_id] = {
            "sha256": hashlib.sha256(token.encode()).hexdigest(),
            "label": label,
            "created": int(time.time()),
        }
        _write(self.path, users)
        return token


def _read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise UsersError(f"{path}: cannot read the users file: {e}") from None
    try:
        data = json.loads(text)
        users = data["users"]
        if not isinstance(users, dict) or not all(
            isinstance(u, dict) and isinstance(u.get("password"), str) for u in users.values()
        ):
            raise ValueError("every user needs a password hash")
    except (ValueError, KeyError, TypeError) as e:
        raise UsersError(f"{path}: not a users file written by `bass user`: {e}") from None
    return users


def _write(path: Path, users: dict[str, dict[str, Any]]) -> None:
    """Replace the file at once (readers never see half of it), readable by its owner
    only: it holds hashes, but hashes are for guessing at."""
    text = json.dumps({"users": users}, indent=2, sort_keys=True) + "\n"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(temporary, path)


# -- the server's secret key and signed values -----------------------------------------


def secret_key(path: str | Path) -> bytes:
    """The server's secret key (signs sessions and CSRF tokens), made on first use in a
    file only its owner can read, so that sessions survive a restart."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes().strip()
        if len(key) < 32:
            raise UsersError(f"{path}: the secret key file is too short; remove it") from None
        return key
    key = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key


def sign(key: bytes, payload: dict[str, Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
    mac = hmac.new(key, body, hashlib.sha256).hexdigest()
    return f"{body.decode()}.{mac}"


def unsign(key: bytes, value: str) -> dict[str, Any] | None:
    """The payload of a value made by sign(), or None if it was not (or was changed)."""
    body, _, mac = value.rpartition(".")
    if not body or not same_secret(
        mac, hmac.new(key, body.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    ):
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(body.encode()))
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def session_value(key: bytes, users: Users, name: str) -> str:
    return sign(
        key, {"u": name, "f": users.fingerprint(name), "e": int(time.time()) + SESSION_SECONDS}
    )


def session_user(key: bytes, users: Users, value: str) -> str | None:
    """The user a session cookie stands for, if it is valid, current and unexpired."""
    payload = unsign(key, value)
    if payload is None or not isinstance(payload.get("e"), int) or payload["e"] < time.time():
        return None
    name = payload.get("u")
    if not isinstance(name, str):
        return None
    fingerprint = users.fingerprint(name)
    if fingerprint is None or not same_secret(str(payload.get("f")), fingerprint):
        return None
    return name


@dataclass
class People:
    """What the gate and the login page share: who may log in (None: nobody has to),
    the key that signs sessions, whether cookies are for https only."""

    users: Users | None
    key: bytes
    secure_cookies: bool = False
    open_without_users: bool = True  # loopback-only (or --insecure): no users, no login

    @property
    def login_required(self) -> bool:
        """People must log in when there are users, and on a network address even when
        the last one was removed (then nobody can: closed, not open)."""
        has_users = self.users is not None and self.users.any()
        return has_users or not self.open_without_users

    def cookie(self, name: str, value: str, same_site: str, max_age: int | None = None) -> str:
        """A Set-Cookie value: HttpOnly, on every path, Secure behind https."""
        parts = [f"{name}={value}", "Path=/", "HttpOnly", f"SameSite={same_site}"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if self.secure_cookies:
            parts.append("Secure")
        return "; ".join(parts)
