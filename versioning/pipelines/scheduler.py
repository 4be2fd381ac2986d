"""The scheduler: one loop per gateway that starts jobs when inputs move,
ends jobs whose datums are all done, and takes back leases of workers that
stopped heartbeating.

It wakes every `interval` seconds, or at once when a datum outcome or a new
job is recorded here. Every step is a state transition guarded in the
database (one active job per pipeline, compare-and-set on states), so
several gateways may run it on one database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from versioning import errors
from versioning.clock import now_us
from versioning.model import ObjectEntry
from versioning.pipelines.cron import cron_inputs, cron_repo, next_tick, tick_name
from versioning.pipelines.jobs import Jobs
from versioning.pipelines.service import Pipeline, Pipelines
from versioning.pipelines.spec import Cron, SpecError
from versioning.views import ObjectAttrs, new_entry

if TYPE_CHECKING:
    from versioning.repository import Versioning

TICK_ATTRS = ObjectAttrs("text/plain", {}, {})

log = logging.getLogger("loxo.pipelines")

DEFAULT_INTERVAL = 0.25


class Scheduler:
    def __init__(
        self,
        jobs: Jobs,
        pipelines: Pipelines,
        writer: Versioning | None = None,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self.jobs = jobs
        self.pipelines = pipelines
        # Writes cron ticks (None: cron inputs never tick).
        self.writer = writer
        self.interval = interval
        # Problems already logged, so a stuck pipeline logs once per version.
        self._reported: set[tuple[str, int, str]] = set()

    async def tick(self) -> None:
        await self.jobs.expire_leases()
        for job in await self.jobs.db.jobs.active_jobs():
            await self.jobs.settle(job)
        for pipeline in await self.pipelines.list():
            try:
                if pipeline.state == "running":
                    await self.tick_crons(pipeline)
                await self.jobs.maybe_start(pipeline)
            except errors.JobActive:
                pass
            except (errors.VersioningError, SpecError) as exc:
                key = (pipeline.name, pipeline.version, str(exc))
                if key not in self._reported:
                    self._reported.add(key)
                    log.warning("pipeline %s@%d cannot start a job: %s", *key)

    async def tick_crons(self, pipeline: Pipeline) -> None:
        """Commit a tick to each cron input whose next scheduled time has come."""
        if self.writer is None:
            return
        for _, cron in cron_inputs(pipeline.spec):
            repo = cron_repo(pipeline.name, cron)
            view = await self.writer.branch_view(repo, "main")
            last = (
                await self.writer.commit_time(view.commit)
                if view.commit is not None
                else pipeline.created
            )
            due = next_tick(cron.spec, last)
            if now_us() >= due:
                await self._tick(repo, cron, due)

    async def _tick(self, repo: str, cron: Cron, at: int) -> None:
        assert self.writer is not None
        name = tick_name(at)
        body = (name + "\n").encode()

        async def pieces() -> AsyncIterator[bytes]:
            yield body

        content, result = await self.writer.store_content(pieces())
        edits: dict[str, ObjectEntry | None] = {
            name: new_entry(
                content, result.size, result.md5.hex(), ObjectAttrs("text/plain", {}, {})
            )
        }
        view = await self.writer.branch_view(repo, "main")
        if cron.overwrite:
            async for key, _ in self.writer.iterate(view):
                edits.setdefault(key, None)
        await self.writer.commit(view, edits, f"cron tick {name}", {"op": "cron tick"})

    async def run(self) -> None:
        while True:
            self.jobs.changed.clear()
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pipeline scheduler tick failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.jobs.changed.wait(), self.interval)
