"""Fixtures for the builder tests (helpers in builder_testing.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from builder_testing import Builder, Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def shim(tmp_path_factory) -> Path:
    """A `bass` package that only re-exports the builder, as prototype scripts import it."""
    path = tmp_path_factory.mktemp("shim")
    (path / "bass").mkdir()
    (path / "bass" / "__init__.py").write_text("from bass_builder import *  # noqa: F403\n")
    return path


@pytest.fixture
def builder(tmp_path: Path, shim: Path, receiver: Receiver) -> Builder:
    return Builder(tmp_path, shim, receiver)
