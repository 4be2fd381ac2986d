"""The scheduler: the loop that starts jobs when inputs move, ends jobs
whose datums are all done, takes back leases of workers that stopped
heartbeating, and commits cron ticks.

Every gateway runs the loop, but only the leader among the gateways on one
database ticks (db/leader.py): the others wait, ready to take over within a
second of the leader going away. It wakes every `interval` seconds, or at
once when a commit, a datum outcome or a new job is recorded in this
process; work recorded through another gateway is seen at the next tick. A
datum outcome alone only settles the active jobs (is any of its datums still
open?); the full tick (expiry, triggers, cron) runs when something else
moved, when a job ended, and on the interval.
Steps are also guarded in the database (one active job per pipeline,
compare-and-set on states, a cron tick that finds its time ticked already
commits nothing), so the moment two gateways both believe they lead, while
a lost leader has not noticed yet, does no harm
(docs/design/multi-gateway.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from versioning import errors, tree
from versioning.clock import now_us
from versioning.db.leader import Leadership
from versioning.model import ObjectEntry
from versioning.pipelines.cron import cron_inputs, cron_repo, next_tick, tick_name
from versioning.pipelines.jobs import JobRow, Jobs
from versioning.pipelines.service import Pipeline, Pipelines
from versioning.pipelines.spec import Cron, SpecError
from versioning.views import ObjectAttrs, new_entry

if TYPE_CHECKING:
    from versioning.repository import Versioning

TICK_ATTRS = ObjectAttrs("text/plain", {}, {})
# A tick file's name (cron.tick_name).
_TICK = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

log = logging.getLogger("loxo.pipelines")

DEFAULT_INTERVAL = 0.25
MIN_INTERVAL = 0.02


class Scheduler:
    def __init__(
        self,
        jobs: Jobs,
        pipelines: Pipelines,
        writer: Versioning | None = None,
        interval: float = DEFAULT_INTERVAL,
        leader: Leadership | None = None,
    ) -> None:
        self.jobs = jobs
        self.pipelines = pipelines
        # Writes cron ticks (None: cron inputs never tick).
        self.writer = writer
        self.interval = interval
        # Whether this gateway leads (None: it is the only one).
        self.leader = leader
        # Problems already logged, so a stuck pipeline logs once per version.
        self._reported: set[tuple[str, int, str]] = set()

    async def settle_only(self) -> bool:
        """End the jobs whose datums are all done; whether one ended (then a
        full tick follows: a downstream pipeline may start)."""
        ended = False
        for job in await self.jobs.db.jobs.active_jobs():
            done = await self.jobs.settle(job)
            if done is not None:
                _job_ended(done)
                ended = True
        return ended

    async def tick(self) -> None:
        expired = await self.jobs.expire_leases()
        if expired:
            log.warning(
                "took back %d datum lease(s) of workers that stopped heartbeating",
                expired,
                extra={"event": "leases_expired", "count": expired},
            )
        busy: set[str] = set()
        for job in await self.jobs.db.jobs.active_jobs():
            ended = await self.jobs.settle(job)
            if ended is None:
                busy.add(job.pipeline)
            else:
                _job_ended(ended)
        pipelines = upstream_first(await self.pipelines.list())
        upstream = _upstream(pipelines)
        for pipeline in pipelines:
            # One input change, one job per pipeline: while a pipeline upstream
            # runs, a job here would read its old output now and run again
            # when the new one lands (a diamond's join would run twice).
            if upstream[pipeline.name] & busy:
                continue
            try:
                if pipeline.state == "running":
                    await self.tick_crons(pipeline)
                started = await self.jobs.maybe_start(pipeline)
                if started is not None:
                    busy.add(pipeline.name)
                    log.info(
                        "job %s of %s@%d started: %s datum(s) to run, %s reused",
                        started.id,
                        started.pipeline,
                        started.version,
                        started.stats.get("run", "?"),
                        started.stats.get("reused", "?"),
                        extra={
                            "event": "job_started",
                            "job": started.id,
                            "pipeline": started.pipeline,
                        },
                    )
            except errors.JobActive:
                busy.add(pipeline.name)
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

        async def not_ticked(src: tree.NodeSource, root: tree.Root) -> None:
            # Tick names sort by time: a tick at or after this one means
            # another gateway ticked meanwhile (two leaders for a moment).
            async for key, _ in tree.iterate(src, root, name):
                if _TICK.match(key):
                    raise errors.PreconditionFailed(f"{repo} ticked {name} already")

        with contextlib.suppress(errors.PreconditionFailed):
            await self.writer.commit(
                view, edits, f"cron tick {name}", {"op": "cron tick"}, check=not_ticked
            )

    async def run(self) -> None:
        jobs = self.jobs
        full = True
        while True:
            jobs.changed.clear()
            jobs.datum_ended.clear()
            try:
                leads = self.leader is None or await self.leader.is_leader()
                if leads and (full or await self.settle_only()):
                    await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pipeline scheduler tick failed; retrying")
            changed = asyncio.ensure_future(jobs.changed.wait())
            ended = asyncio.ensure_future(jobs.datum_ended.wait())
            await asyncio.wait(
                {changed, ended}, timeout=self.interval, return_when=asyncio.FIRST_COMPLETED
            )
            changed.cancel()
            ended.cancel()
            # A datum's outcome only asks "is its job done?" (two index probes);
            # a commit, a new job or the interval runs the whole tick.
            full = jobs.changed.is_set() or not jobs.datum_ended.is_set()
            # Woken by every commit and datum outcome: at most one tick per
            # MIN_INTERVAL, so a stream of writes does not keep it spinning.
            await asyncio.sleep(MIN_INTERVAL)


def _job_ended(job: JobRow) -> None:
    """Log a job's end: state, why, how long, and its datums by state."""
    counts = job.stats.get("counts") or {}
    seconds = (job.finished - job.created) / 1e6 if job.finished is not None else None
    log.log(
        logging.INFO if job.state == "success" else logging.WARNING,
        "job %s of %s ended: %s%s",
        job.id,
        job.pipeline,
        job.state,
        f" ({job.reason})" if job.reason else "",
        extra={
            "event": "job_ended",
            "job": job.id,
            "pipeline": job.pipeline,
            "state": job.state,
            "reason": job.reason or None,
            "seconds": seconds,
            "datums": counts,
        },
    )


def upstream_first(pipelines: list[Pipeline]) -> list[Pipeline]:
    """The pipelines in an order where each comes after those it reads (the
    DAG has no cycle; ties by name)."""
    by_name = {p.name: p for p in pipelines}
    done: set[str] = set()
    out: list[Pipeline] = []

    def visit(p: Pipeline, path: frozenset[str]) -> None:
        if p.name in done or p.name in path:
            return
        for repo in p.input_repos:
            if repo in by_name:
                visit(by_name[repo], path | {p.name})
        done.add(p.name)
        out.append(p)

    for p in sorted(pipelines, key=lambda x: x.name):
        visit(p, frozenset())
    return out


def _upstream(pipelines: list[Pipeline]) -> dict[str, set[str]]:
    """Each pipeline's upstream pipelines, transitively (pipelines come upstream first)."""
    names = {p.name for p in pipelines}
    out: dict[str, set[str]] = {}
    for p in pipelines:
        mine: set[str] = set()
        for repo in p.input_repos:
            if repo in names:
                mine.add(repo)
                mine |= out.get(repo, set())
        out[p.name] = mine
    return out
