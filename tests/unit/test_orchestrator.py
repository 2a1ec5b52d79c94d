"""The orchestrator's claim on a real SQLite file, driven directly (no HTTP)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bass.config import Config, check_pipeline
from bass.orchestrator import Orchestrator
from bass.store import builds
from bass.store.db import Database

PIPELINES = {"demo": check_pipeline({"repository": "/r", "exec": ["x"]}, "test")}


def test_a_worker_that_hung_up_is_not_handed_a_build_queued_meanwhile(tmp_path: Path) -> None:
    """The race: a claim finds nothing; before the long-poll starts waiting, a build is
    queued and the worker hangs up. The poll sees the queue changed and must ask again
    whether its worker is there before claiming: a build handed to a closed connection
    would run nowhere until its lease ran out."""

    async def scenario() -> tuple[Any, str]:
        db = Database(tmp_path / "o.db")
        orchestrator = Orchestrator(db, Config(pipelines=PIPELINES))
        hung_up = False

        async def gone() -> bool:
            return hung_up

        class RaceAfterTheFirstClaim:
            """The store, with the race put right after the first (empty) claim."""

            armed = True

            async def awrite(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
                nonlocal hung_up
                result = await db.awrite(fn, *args, **kwargs)
                if fn is builds.claim and self.armed:
                    self.armed = False
                    assert result is None
                    hung_up = True
                    await orchestrator.enqueue("demo", trigger="cli")
                return result

            def __getattr__(self, name: str) -> Any:
                return getattr(db, name)

        orchestrator.db = RaceAfterTheFirstClaim()  # type: ignore[assignment]
        try:
            claimed = await orchestrator.claim(worker="w", tags=[], wait=30, gone=gone)
            row = await db.aread(lambda c: c.execute("SELECT state FROM builds").fetchone())
            return claimed, row["state"]
        finally:
            db.close()

    claimed, state = asyncio.run(scenario())
    assert claimed is None
    assert state == "queued"  # still there for a worker that is
