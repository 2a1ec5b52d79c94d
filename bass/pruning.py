"""Pruning, the retention loop: every 10 minutes, remove ended builds past
`--retention-days` or beyond `--keep-builds` (per pipeline, `keep-builds` in the
pipelines file overrides), with their spans and logs, then give the space back. The
SQL is bass.store.retention's; deletes run in small transactions between ingest's."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bass.config import Settings
from bass.store import retention
from bass.store.db import Database

log = logging.getLogger("bass.pruning")


@dataclass
class Policy:
    days: float | None = None
    keep_builds: int | None = None
    per_pipeline: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            days=settings.retention_days,
            keep_builds=settings.keep_builds,
            per_pipeline={
                name: p["keep-builds"]
                for name, p in settings.config.pipelines.items()
                if p.get("keep-builds")
            },
        )

    @property
    def active(self) -> bool:
        return self.days is not None or self.keep_builds is not None or bool(self.per_pipeline)


@dataclass
class Unmerged:
    """Log records deleted since the search index was last merged (the loop's count)."""

    records: int = 0


async def prune_once(
    db: Database,
    policy: Policy,
    clock: Callable[[], float] = time.time,
    unmerged: Unmerged | None = None,
) -> dict[str, int]:
    """One pass; returns how many builds, other traces and log records were removed
    (log records without a trace go by age too). `unmerged` carries the deletions the
    search index has not been merged since from pass to pass."""
    unmerged = Unmerged() if unmerged is None else unmerged
    cutoff = clock() - policy.days * 86400 if policy.days is not None else None
    removed = {"builds": 0, "traces": 0, "log records": 0}
    previous: set[str] = set()
    while True:
        builds = await db.aread(
            retention.expired_builds,
            finished_before=cutoff,
            keep=policy.per_pipeline,
            keep_default=policy.keep_builds,
        )
        strays = []
        if cutoff is not None:
            strays = await db.aread(retention.stray_traces, started_before_ns=int(cutoff * 1e9))
        if not builds and not strays:
            break
        traces = [b["trace_id"] for b in builds] + strays
        if set(traces) == previous:  # nothing went away last time: do not spin
            log.error("pruning made no progress on %d traces; stopping this pass", len(traces))
            break
        previous = set(traces)
        for trace_id in traces:
            while deleted := await db.awrite(retention.delete_logs_chunk, trace_id):
                removed["log records"] += deleted
            await db.awrite(retention.delete_trace_rest, trace_id)
        removed["builds"] += len(builds)
        removed["traces"] += len(strays)
    if removed["builds"]:
        await db.awrite(retention.forget_pruned)
    if cutoff is not None:
        before_ns = int(cutoff * 1e9)
        while deleted := await db.awrite(retention.delete_untraced_logs_chunk, before_ns):
            removed["log records"] += deleted
    if any(removed.values()):
        unmerged.records += removed["log records"]
        await reclaim(db, unmerged)
        log.info("pruned %s", ", ".join(f"{n} {what}" for what, n in removed.items()))
    return removed


MERGE_SHARE = 10  # merge the search index once 1 / MERGE_SHARE of the records are deleted


async def reclaim(db: Database, unmerged: Unmerged) -> None:
    """Give free pages back to the file system, a slice at a time; first, once a tenth
    of the log records stored have been deleted since it was last done, merge the search
    index (folding in their delete markers): a merge writes the whole index, so it is
    not done for every pass."""
    if unmerged.records * MERGE_SHARE >= await db.aread(retention.stored_records):
        while await db.awrite(retention.merge_index):
            pass
        unmerged.records = 0
    if await db.aread(retention.auto_vacuum_mode) != 2:  # only a file created by bass
        return
    while await db.aread(retention.free_pages) > 0:
        await db.awrite(retention.incremental_vacuum)
    await asyncio.to_thread(db.checkpoint)


async def prune_forever(
    db: Database,
    policy: Policy,
    interval: float,
    on_pass: Callable[[dict[str, int] | None], None] = lambda removed: None,
) -> None:
    """Prune every `interval` s; `on_pass` hears what each pass removed (None: it
    failed), for /metrics."""
    unmerged = Unmerged()
    while True:
        removed = None
        try:
            removed = await prune_once(db, policy, unmerged=unmerged)
        except Exception:
            log.exception("pruning failed")
        on_pass(removed)
        await asyncio.sleep(interval)
