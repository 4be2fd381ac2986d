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

from versioning import errors
from versioning.pipelines.jobs import Jobs
from versioning.pipelines.service import Pipelines
from versioning.pipelines.spec import SpecError

log = logging.getLogger("loxo.pipelines")

DEFAULT_INTERVAL = 0.25


class Scheduler:
    def __init__(
        self, jobs: Jobs, pipelines: Pipelines, interval: float = DEFAULT_INTERVAL
    ) -> None:
        self.jobs = jobs
        self.pipelines = pipelines
        self.interval = interval
        # Problems already logged, so a stuck pipeline logs once per version.
        self._reported: set[tuple[str, int, str]] = set()

    async def tick(self) -> None:
        await self.jobs.expire_leases()
        for job in await self.jobs.db.jobs.active_jobs():
            await self.jobs.settle(job)
        for pipeline in await self.pipelines.list():
            try:
                await self.jobs.maybe_start(pipeline)
            except errors.JobActive:
                pass
            except (errors.VersioningError, SpecError) as exc:
                key = (pipeline.name, pipeline.version, str(exc))
                if key not in self._reported:
                    self._reported.add(key)
                    log.warning("pipeline %s@%d cannot start a job: %s", *key)

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
