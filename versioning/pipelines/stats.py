"""Pipeline statistics for the operator's view: how many jobs and datums are
in each state, how many workers are at work, and the datums that ended since
the last look (for duration histograms). Read at scrape time, from the
database, so every gateway on one database reports the same numbers and no
transition has to be hooked; the queries are cheap by construction
(versioning/db/job_stats.py says why).
"""

from __future__ import annotations

from dataclasses import dataclass

from versioning.clock import now_us
from versioning.db import Database
from versioning.db.job_stats import FinishedDatum, StateCount

# A worker that ended an attempt this recently counts as seen.
RECENT_WORKER_US = 5 * 60 * 1_000_000
# Datums are read this long after they ended: the statement recording an
# outcome stamps `finished` before it commits, so a datum stamped just
# before a look may become visible just after it.
SETTLE_US = 2 * 1_000_000
# At most this many ended datums per look; the rest come at the next one.
BATCH = 10_000


@dataclass(frozen=True, slots=True)
class PipelineCounts:
    jobs: tuple[StateCount, ...]
    datums: tuple[StateCount, ...]
    workers_leasing: int  # workers holding a datum lease now
    workers_seen: int  # ... or having ended an attempt in the last 5 minutes


class PipelineStats:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def counts(self) -> PipelineCounts:
        now = now_us()
        jobs = await self.db.job_stats.jobs_by_state()
        datums = await self.db.job_stats.datums_by_state()
        leasing, seen = await self.db.job_stats.workers(now, now - RECENT_WORKER_US)
        return PipelineCounts(tuple(jobs), tuple(datums), leasing, seen)

    async def ended_datums(self, after: int) -> tuple[list[FinishedDatum], int]:
        """Datums that ended after `after` (microseconds since the epoch) and
        at least SETTLE_US ago; with the `after` to pass next time."""
        until = now_us() - SETTLE_US
        if until <= after:
            return [], after
        rows = await self.db.job_stats.finished_datums(after, until, BATCH)
        if len(rows) < BATCH:
            return rows, until
        # A full batch: keep whole instants only, so datums sharing the last
        # one are all read next time rather than half now and half never.
        last = rows[-1].finished
        kept = [r for r in rows if r.finished < last]
        if not kept:  # a whole batch at one instant: take it, skip the instant
            return rows, last
        return kept, last - 1
