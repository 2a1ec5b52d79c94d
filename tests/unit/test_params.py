"""Numbers in paths and query strings past what SQLite's INTEGER holds are no build
(404) or are ignored, never an overflow in the store (500)."""

from __future__ import annotations

import pytest

from bass import params
from tests.unit.conftest import App

HUGE = "99999999999999999999"  # 20 digits: past 2^63


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/pipelines/p/{HUGE}", 404),
        (f"/pipelines/p/{HUGE}/log", 404),
        (f"/pipelines/p/{HUGE}/steplog?span=x", 404),
        (f"/api/jobs/{HUGE}", 404),
        (f"/api/pipelines/p/builds/{HUGE}", 404),
        (f"/api/pipelines/p/builds/{HUGE}/logs", 404),
        (f"/pipelines/p?before={HUGE}", 404),  # no pipeline p, and no builds
        (f"/api/pipelines/p/builds?before={HUGE}", 200),
        (f"/search?q=x&pipeline=p&number={HUGE}", 200),
    ],
)
def test_huge_numbers_are_not_server_errors(app: App, path: str, status: int) -> None:
    assert app.client.get(path).status_code == status


def test_huge_job_ids_from_workers_are_404(app: App) -> None:
    response = app.client.post(f"/jobs/{HUGE}/heartbeat", headers={"X-API-Key": "k"})
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12", 12), ("0", 0), (str(2**63 - 1), 2**63 - 1), (str(2**63), None), ("²", None),
     ("-1", None), ("", None), (None, None), ("1e3", None)],
)  # fmt: skip
def test_number(value: str | None, expected: int | None) -> None:
    assert params.number(value) == expected
