"""Counts over jobs and datums for the operator's view (metrics), read at
scrape time. Read-only; every statement is bounded by an index or by the jobs
table (one row per job), never a scan of every datum ever run:

- datums of ended jobs are counted from the counts each job recorded in its
  stats when it ended (jobs.stats->'counts', written by the statement that
  ended it); only active jobs' datums, and ended jobs without such counts
  (stopped jobs), are counted row by row, through the datums (job, seq) index;
- workers holding a lease come from the partial index of running datums;
- finished datums are read from active or recently ended jobs only.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class StateCount:
    pipeline: str
    state: str
    count: int


@dataclass(frozen=True, slots=True)
class FinishedDatum:
    pipeline: str
    state: str  # success, failed or recovered
    started: int | None  # the last attempt's lease time (microseconds since the epoch)
    finished: int
    download_us: int
    process_us: int
    upload_us: int
    wait_us: int


class PgJobStats:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def jobs_by_state(self) -> list[StateCount]:
        rows = await self.pool.fetch(
            "SELECT pipeline, state, count(*) AS n FROM jobs GROUP BY pipeline, state"
        )
        return [StateCount(r["pipeline"], r["state"], r["n"]) for r in rows]

    async def datums_by_state(self) -> list[StateCount]:
        rows = await self.pool.fetch(
            """
            WITH recorded AS (
                SELECT j.pipeline, c.key AS state, sum(c.value::bigint) AS n
                FROM jobs j, jsonb_each_text(j.stats -> 'counts') AS c
                WHERE j.state IN ('success', 'failure')
                  AND jsonb_typeof(j.stats -> 'counts') = 'object'
                GROUP BY j.pipeline, c.key
            ), counted AS (
                SELECT j.pipeline, d.state, count(*) AS n
                FROM jobs j JOIN datums d ON d.job = j.id
                WHERE j.state NOT IN ('success', 'failure')
                   OR jsonb_typeof(j.stats -> 'counts') IS DISTINCT FROM 'object'
                GROUP BY j.pipeline, d.state
            )
            SELECT pipeline, state, sum(n)::bigint AS n
            FROM (SELECT * FROM recorded UNION ALL SELECT * FROM counted) AS both_kinds
            GROUP BY pipeline, state
            """
        )
        return [StateCount(r["pipeline"], r["state"], r["n"]) for r in rows]

    async def workers(self, now: int, since: int) -> tuple[int, int]:
        """(workers holding a lease at `now`, workers holding one or having
        ended an attempt since `since`), by the names they lease under."""
        row = await self.pool.fetchrow(
            """
            WITH leasing AS (
                SELECT DISTINCT worker FROM datums
                WHERE state = 'running' AND lease_until > $1 AND worker <> ''
            ), recent AS (
                SELECT DISTINCT d.worker FROM jobs j JOIN datums d ON d.job = j.id
                WHERE (j.state IN ('created', 'running') OR j.finished > $2)
                  AND d.finished > $2 AND d.worker <> ''
            )
            SELECT (SELECT count(*) FROM leasing) AS leasing,
                   (SELECT count(*) FROM (SELECT worker FROM leasing
                                          UNION SELECT worker FROM recent) AS u) AS seen
            """,
            now,
            since,
        )
        assert row is not None
        return int(row["leasing"]), int(row["seen"])

    async def finished_datums(self, after: int, until: int, limit: int) -> list[FinishedDatum]:
        """Datums that reached an end state (success, failed, recovered) in
        (after, until], oldest first, at most `limit`."""
        rows = await self.pool.fetch(
            """
            SELECT d.pipeline, d.state, d.started, d.finished,
                   d.download_us, d.process_us, d.upload_us, d.wait_us
            FROM jobs j JOIN datums d ON d.job = j.id
            WHERE (j.state IN ('created', 'running') OR j.finished > $1)
              AND d.finished > $1 AND d.finished <= $2
              AND d.state IN ('success', 'failed', 'recovered')
            ORDER BY d.finished
            LIMIT $3
            """,
            after,
            until,
            limit,
        )
        return [
            FinishedDatum(
                r["pipeline"],
                r["state"],
                r["started"],
                r["finished"],
                r["download_us"],
                r["process_us"],
                r["upload_us"],
                r["wait_us"],
            )
            for r in rows
        ]
