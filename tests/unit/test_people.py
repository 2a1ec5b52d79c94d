"""People: the users file (`bass user`), login, sessions, API tokens, and the refusal
to serve a network open."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bass.auth import Users, UsersError, check_password, hash_password
from tests.unit.conftest import App

PASSWORD = "correct horse battery"


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.json"
    Users(path).add("alice", PASSWORD)
    return path


@pytest.fixture
def locked(make_app: Any, users_file: Path) -> App:
    """The app with a users file: people must log in."""
    return make_app(users_file=str(users_file))


def login(app: App, user: str = "alice", password: str = PASSWORD, next: str = "/") -> Any:
    app.client.get("/login")
    return app.client.post(
        "/login",
        data={"user": user, "password": password, "next": next,
              "csrf": app.client.cookies["bass_csrf"]},
        follow_redirects=False,
    )  # fmt: skip


def test_the_users_file_holds_no_password_and_only_its_owner_reads_it(users_file: Path) -> None:
    text = users_file.read_text()
    assert PASSWORD not in text
    stored = json.loads(text)["users"]["alice"]["password"]
    assert stored.startswith("scrypt$") and check_password(PASSWORD, stored)
    assert not check_password("wrong", stored)
    assert hash_password(PASSWORD) != hash_password(PASSWORD)  # salted
    assert users_file.stat().st_mode & 0o777 == 0o600


def test_without_users_the_dashboard_is_open(app: App) -> None:
    assert app.client.get("/").status_code == 200
    assert app.client.get("/api/status").status_code == 200


@pytest.mark.parametrize("path", ["/", "/pipelines/demo", "/status", "/search?q=x"])
def test_pages_send_a_stranger_to_the_login_page(locked: App, path: str) -> None:
    response = locked.client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=/")


@pytest.mark.parametrize("path", ["/api/status", "/api/builds/1", "/pipelines"])
def test_the_json_api_answers_a_stranger_401(locked: App, path: str) -> None:
    response = locked.client.get(path)
    assert response.status_code == 401
    assert "Bearer" in response.json()["error"]


def test_machines_need_no_person(locked: App) -> None:
    assert locked.client.get("/healthz").status_code == 200
    assert locked.webhook("demo").status_code == 200
    assert locked.dequeue({"tags": []}).status_code == 200
    assert locked.client.get("/login").status_code == 200
    assert locked.client.get("/static/bass.css").status_code == 200


def test_a_dashboard_action_by_a_stranger_is_refused(locked: App) -> None:
    locked.client.get("/login")
    response = locked.form_post("/pipelines/demo/trigger")
    assert response.status_code == 401
    assert locked.count("builds") == 0


def test_logging_in_sets_a_session_and_goes_back(locked: App) -> None:
    response = login(locked, next="/pipelines/demo")
    assert response.status_code == 303
    assert response.headers["location"] == "/pipelines/demo"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("bass_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=1209600" in cookie
    page = locked.client.get("/")
    assert page.status_code == 200
    assert "alice" in page.text and "log out" in page.text
    assert locked.client.get("/api/status").status_code == 200
    assert locked.form_post("/pipelines/demo/trigger").status_code == 303


@pytest.mark.parametrize(("user", "password"), [("alice", "wrong"), ("bob", PASSWORD)])
def test_a_wrong_name_or_password_is_refused(locked: App, user: str, password: str) -> None:
    response = login(locked, user, password)
    assert response.status_code == 401
    assert "Wrong user name or password" in response.text
    assert "bass_session" not in response.headers.get("set-cookie", "")
    assert locked.client.get("/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\\evil"])
def test_login_never_sends_anyone_to_another_site(locked: App, target: str) -> None:
    assert login(locked, next=target).headers["location"] == "/"


def test_a_login_form_from_elsewhere_is_refused(locked: App) -> None:
    response = locked.client.post(
        "/login", data={"user": "alice", "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 403  # no CSRF token: login CSRF


def test_logging_out_ends_the_session(locked: App) -> None:
    login(locked)
    response = locked.form_post("/logout")
    assert response.status_code == 303
    assert "Max-Age=0" in response.headers["set-cookie"]
    locked.client.cookies.delete("bass_session")
    assert locked.client.get("/", follow_redirects=False).status_code == 303


def test_a_changed_password_or_a_removed_user_ends_every_session(
    locked: App, users_file: Path
) -> None:
    Users(users_file).add("bob", PASSWORD)  # alice is not the last user
    login(locked)
    assert locked.client.get("/").status_code == 200
    Users(users_file).add("alice", "another long password")
    assert locked.client.get("/", follow_redirects=False).status_code == 303
    login(locked, password="another long password")
    assert locked.client.get("/").status_code == 200
    Users(users_file).remove("alice")
    assert locked.client.get("/", follow_redirects=False).status_code == 303


def test_a_tampered_session_is_refused(locked: App) -> None:
    login(locked)
    value = locked.client.cookies["bass_session"]
    body, mac = value.rsplit(".", 1)
    locked.client.cookies.clear()
    locked.client.cookies.set(
        "bass_session", body + "." + mac[:-1] + ("0" if mac[-1] != "0" else "1")
    )
    assert locked.client.get("/", follow_redirects=False).status_code == 303


def test_an_api_token_works_for_scripts(locked: App, users_file: Path) -> None:
    token = Users(users_file).new_token("alice", "ci")
    assert token not in users_file.read_text()
    auth = {"Authorization": f"Bearer {token}"}
    assert locked.client.get("/api/status", headers=auth).status_code == 200
    assert (
        locked.client.get("/api/status", headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert (
        locked.client.get("/api/status", headers={"Authorization": f"Bearer {forged}"}).status_code
        == 401
    )


@pytest.mark.parametrize(
    ("name", "password", "problem"),
    [
        ("al ice", PASSWORD, "user name"),
        ("alice", "short", "8 characters"),
        ("", "x" * 9, "user name"),
    ],
)
def test_bad_users_are_refused_by_name(tmp_path: Path, name: str, password: str, problem: str):
    with pytest.raises(UsersError, match=problem):
        Users(tmp_path / "u.json").add(name, password)


def _bass(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bass", *args], cwd=cwd, input=stdin, capture_output=True,
        text=True, timeout=60, env={**os.environ, "PYTHONWARNINGS": "error"},
    )  # fmt: skip


def test_bass_user_add_token_list_remove(tmp_path: Path) -> None:
    added = _bass("user", "add", "carol", "--password-stdin", cwd=tmp_path, stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert Users(tmp_path / "users.json").authenticate("carol", PASSWORD)
    token = _bass("user", "token", "carol", "--label", "ci", cwd=tmp_path)
    assert Users(tmp_path / "users.json").token_user(token.stdout.strip()) == "carol"
    assert _bass("user", "list", cwd=tmp_path).stdout.split() == ["carol"]
    assert _bass("user", "remove", "carol", cwd=tmp_path).returncode == 0
    missing = _bass("user", "remove", "carol", cwd=tmp_path)
    assert missing.returncode == 2 and "no user 'carol'" in missing.stderr


def _serve_get(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "orchestrator-pipelines.json").write_text("{}")
    return _bass("serve", "--get", "/healthz", *args, cwd=tmp_path)


def test_a_network_address_without_users_and_keys_is_refused(tmp_path: Path) -> None:
    result = _serve_get(tmp_path, "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "users file" in result.stderr and "worker keys" in result.stderr
    assert "--insecure" in result.stderr
    assert _serve_get(tmp_path, "--host", "0.0.0.0", "--insecure").returncode == 0
    assert _serve_get(tmp_path, "--host", "127.0.0.1").returncode == 0
    Users(tmp_path / "users.json").add("dave", PASSWORD)
    (tmp_path / "worker-keys").write_text("k1\n")
    assert _serve_get(tmp_path, "--host", "0.0.0.0").returncode == 0


def test_on_a_network_address_the_last_user_gone_closes_the_dashboard(
    make_app: Any, users_file: Path
) -> None:
    app = make_app(users_file=str(users_file), host="0.0.0.0")
    Users(users_file).remove("alice")
    assert app.client.get("/api/status").status_code == 401  # closed, not open
    assert app.client.get("/", follow_redirects=False).status_code == 303
    loopback = make_app(users_file=str(users_file))
    assert loopback.client.get("/api/status").status_code == 200  # a laptop: open


@pytest.mark.parametrize("value", ["é.abc", "x.\u00e9\u00e9", "eyJ1Ijoi.é", "\u00ff" * 70])
def test_a_session_cookie_with_odd_characters_is_refused_not_a_500(locked: App, value: str):
    cookie = b"bass_session=" + value.encode()  # raw bytes, as a hostile client sends them
    response = locked.client.get("/", headers=[(b"cookie", cookie)], follow_redirects=False)
    assert response.status_code == 303


def test_a_csrf_token_with_odd_characters_is_refused_not_a_500(app: App) -> None:
    app.client.get("/")
    response = app.client.post(
        "/pipelines/demo/trigger",
        content=b"csrf=%C3%A9%ED%A0%80",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code in (400, 403)


def test_the_demo_on_a_network_address_is_refused_too(tmp_path: Path) -> None:
    result = _bass("demo", "--dir", str(tmp_path / "demo"), "--host", "0.0.0.0",
                   "--port", "1", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert "users file" in result.stderr and "--insecure" in result.stderr
