"""Jobs, their datums, the live datums of each pipeline's output, and datum logs.

The statements that move a datum between states each check the state they
move from, so two gateways (or a late worker and the lease sweeper) can never
both apply a transition. See migration 0011 for the tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from versioning import errors
from versioning.ids import CommitId

ACTIVE = ("created", "running")
ENDED = ("success", "failure", "killed")


@dataclass(frozen=True, slots=True)
class JobInput:
    name: str
    repo: str
    branch: str
    commit: str  # hex; "" for a branch without commits


@dataclass(frozen=True, slots=True)
class JobRow:
    id: str
    pipeline: str
    version: int
    salt: str
    state: str
    created: int
    started: int | None
    finished: int | None
    inputs: tuple[JobInput, ...]
    commit_set: str
    base_job: str | None
    output_commit: CommitId | None
    reason: str
    removed: tuple[str, ...]
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DatumRow:
    job: str
    id: str
    pipeline: str
    salt: str
    location: str
    seq: int
    state: str
    reason: str
    inputs: list[dict[str, Any]]
    tries: int
    attempt: str | None
    worker: str
    lease_until: int | None
    out_open: CommitId | None
    in_open: dict[str, str]
    output_commit: CommitId | None
    reused_from: str | None
    error: str
    exit_code: int | None
    download_us: int
    process_us: int
    upload_us: int
    wait_us: int
    queued: int
    started: int | None
    finished: int | None


@dataclass(frozen=True, slots=True)
class NewDatum:
    id: str
    location: str
    state: str  # pending or skipped
    reason: str
    inputs: list[dict[str, Any]]
    output_commit: CommitId | None = None
    reused_from: str | None = None


@dataclass(frozen=True, slots=True)
class LiveDatum:
    location: str
    id: str
    job: str
    outcome: str  # success or recovered
    output_commit: CommitId | None


@dataclass(frozen=True, slots=True)
class PastOutcome:
    """The latest word on a datum id under a salt, and where its outputs are."""

    state: str  # success, failed, recovered (the latest ended state)
    job: str | None  # a job whose row holds reusable outputs (success or skipped)
    output_commit: CommitId | None
    has_output: bool


@dataclass(frozen=True, slots=True)
class LogLine:
    seq: int
    job: str
    pipeline: str
    datum: str
    try_: int
    worker: str
    stream: str
    text: str
    time: int


def _job(r: asyncpg.Record) -> JobRow:
    return JobRow(
        r["id"],
        r["pipeline"],
        r["version"],
        r["salt"],
        r["state"],
        r["created"],
        r["started"],
        r["finished"],
        tuple(JobInput(**i) for i in json.loads(r["inputs"])),
        r["commit_set"],
        r["base_job"],
        CommitId(r["output_commit"]) if r["output_commit"] is not None else None,
        r["reason"],
        tuple(json.loads(r["removed"])),
        json.loads(r["stats"]),
    )


def _datum(r: asyncpg.Record) -> DatumRow:
    d = dict(r)
    d["inputs"] = json.loads(d["inputs"])
    d["in_open"] = json.loads(d["in_open"])
    for k in ("out_open", "output_commit"):
        if d[k] is not None:
            d[k] = CommitId(d[k])
    return DatumRow(**d)


_JOB_COLS = (
    "id, pipeline, version, salt, state, created, started, finished, inputs, commit_set, "
    "base_job, output_commit, reason, removed, stats"
)


class PgJobs:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- jobs ----------------------------------------------------------------------

    async def create_job(self, job: JobRow, datums: Sequence[NewDatum]) -> None:
        """The job and its datums in one transaction; JobActive when the
        pipeline has an active job already."""
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                await conn.execute(
                    f"INSERT INTO jobs ({_JOB_COLS}) VALUES "
                    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                    job.id,
                    job.pipeline,
                    job.version,
                    job.salt,
                    job.state,
                    job.created,
                    job.started,
                    job.finished,
                    json.dumps([_input(i) for i in job.inputs]),
                    job.commit_set,
                    job.base_job,
                    job.output_commit,
                    job.reason,
                    json.dumps(list(job.removed)),
                    json.dumps(job.stats),
                )
            except asyncpg.UniqueViolationError:
                raise errors.JobActive(job.pipeline) from None
            except asyncpg.ForeignKeyViolationError:
                raise errors.PipelineNotFound(job.pipeline) from None
            await conn.copy_records_to_table(
                "datums",
                columns=(
                    "job",
                    "id",
                    "pipeline",
                    "salt",
                    "location",
                    "state",
                    "reason",
                    "inputs",
                    "output_commit",
                    "reused_from",
                    "queued",
                    "finished",
                ),
                records=[
                    (
                        job.id,
                        d.id,
                        job.pipeline,
                        job.salt,
                        d.location,
                        d.state,
                        d.reason,
                        json.dumps(d.inputs),
                        d.output_commit,
                        d.reused_from,
                        job.created,
                        job.created if d.state == "skipped" else None,
                    )
                    for d in datums
                ],
            )

    async def get_job(self, ident: str) -> JobRow:
        """A job by id, or by a unique prefix of at least 8 characters."""
        if len(ident) >= 32:
            row = await self.pool.fetchrow(f"SELECT {_JOB_COLS} FROM jobs WHERE id = $1", ident)
            if row is None:
                raise errors.JobNotFound(ident)
            return _job(row)
        if len(ident) < 8:
            raise errors.JobNotFound(f"{ident} (give at least 8 characters of a job id)")
        rows = await self.pool.fetch(
            f"SELECT {_JOB_COLS} FROM jobs WHERE id >= $1 AND id < $1 || 'g' "
            'ORDER BY id COLLATE "C" LIMIT 2',
            ident,
        )
        if not rows:
            raise errors.JobNotFound(ident)
        if len(rows) > 1:
            raise errors.AmbiguousRef(f"{ident} matches several jobs")
        return _job(rows[0])

    async def list_jobs(
        self, pipeline: str | None, state: str | None, before: int | None, limit: int
    ) -> list[JobRow]:
        """Newest first; `before` is a `created` time (a page's cursor)."""
        rows = await self.pool.fetch(
            f"SELECT {_JOB_COLS} FROM jobs WHERE ($1::text IS NULL OR pipeline = $1) "
            "AND ($2::text IS NULL OR state = $2) AND ($3::bigint IS NULL OR created < $3) "
            "ORDER BY created DESC, id LIMIT $4",
            pipeline,
            state,
            before,
            limit,
        )
        return [_job(r) for r in rows]

    async def active_jobs(self) -> list[JobRow]:
        rows = await self.pool.fetch(
            f"SELECT {_JOB_COLS} FROM jobs WHERE state IN ('created', 'running') ORDER BY created"
        )
        return [_job(r) for r in rows]

    async def last_job(self, pipeline: str, success: bool = False) -> JobRow | None:
        row = await self.pool.fetchrow(
            f"SELECT {_JOB_COLS} FROM jobs WHERE pipeline = $1 "
            "AND (NOT $2 OR state = 'success') ORDER BY created DESC LIMIT 1",
            pipeline,
            success,
        )
        return _job(row) if row is not None else None

    async def last_jobs(self) -> dict[str, JobRow]:
        """Each pipeline's newest job."""
        rows = await self.pool.fetch(
            f"SELECT DISTINCT ON (pipeline) {_JOB_COLS} FROM jobs ORDER BY pipeline, created DESC"
        )
        return {r["pipeline"]: _job(r) for r in rows}

    async def jobs_reading(self, repo: str, since: int) -> list[JobRow]:
        """Jobs created at or after `since` with an input from `repo`."""
        rows = await self.pool.fetch(
            f"SELECT {_JOB_COLS} FROM jobs WHERE created >= $2 "
            "AND inputs @> jsonb_build_array(jsonb_build_object('repo', $1::text)) "
            "ORDER BY created",
            repo,
            since,
        )
        return [_job(r) for r in rows]

    async def set_job_running(self, job: str, now: int) -> None:
        await self.pool.execute(
            "UPDATE jobs SET state = 'running', started = $2 WHERE id = $1 AND state = 'created'",
            job,
            now,
        )

    async def end_job(
        self,
        job: str,
        state: str,
        now: int,
        reason: str = "",
        output_commit: CommitId | None = None,
        stats: dict[str, Any] | None = None,
        live_remove: Iterable[str] = (),
        live_put: Iterable[LiveDatum] = (),
        pipeline: str = "",
    ) -> bool:
        """End an active job, and (for a success) make the live datums what
        its output commit holds, in one transaction. False when it had ended."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "UPDATE jobs SET state = $2, finished = $3, reason = $4, output_commit = $5, "
                "stats = stats || $6::jsonb, started = coalesce(started, $3) "
                "WHERE id = $1 AND state IN ('created', 'running')",
                job,
                state,
                now,
                reason,
                output_commit,
                json.dumps(stats or {}),
            )
            if status != "UPDATE 1":
                return False
            if state == "killed":
                await conn.execute(
                    "UPDATE datums SET state = 'killed', attempt = NULL, lease_until = NULL, "
                    "finished = $2 WHERE job = $1 AND state IN ('pending', 'running')",
                    job,
                    now,
                )
            gone = list(live_remove)
            if gone:
                await conn.execute(
                    "DELETE FROM live_datums WHERE pipeline = $1 AND location = ANY($2::text[])",
                    pipeline,
                    gone,
                )
            put = list(live_put)
            if put:
                await conn.executemany(
                    "INSERT INTO live_datums (pipeline, location, id, job, outcome, output_commit) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (pipeline, location) DO UPDATE "
                    "SET id = excluded.id, job = excluded.job, outcome = excluded.outcome, "
                    "output_commit = excluded.output_commit",
                    [(pipeline, d.location, d.id, d.job, d.outcome, d.output_commit) for d in put],
                )
        return True

    async def reopen_job(self, job: str) -> None:
        """A failed job back to running (a failed datum restarted)."""
        try:
            status = await self.pool.execute(
                "UPDATE jobs SET state = 'running', finished = NULL, reason = '' "
                "WHERE id = $1 AND state = 'failure'",
                job,
            )
        except asyncpg.UniqueViolationError:
            raise errors.JobActive(f"{job}: its pipeline has another job running") from None
        del status

    async def set_job_stats(self, job: str, stats: dict[str, Any]) -> None:
        await self.pool.execute(
            "UPDATE jobs SET stats = stats || $2::jsonb WHERE id = $1", job, json.dumps(stats)
        )

    # -- live datums -----------------------------------------------------------------

    async def live_at(self, pipeline: str, locations: Sequence[str]) -> dict[str, LiveDatum]:
        rows = await self.pool.fetch(
            "SELECT location, id, job, outcome, output_commit FROM live_datums "
            "WHERE pipeline = $1 AND location = ANY($2::text[])",
            pipeline,
            list(locations),
        )
        return {r["location"]: _live(r) for r in rows}

    async def live_all(self, pipeline: str) -> list[LiveDatum]:
        rows = await self.pool.fetch(
            "SELECT location, id, job, outcome, output_commit FROM live_datums WHERE pipeline = $1",
            pipeline,
        )
        return [_live(r) for r in rows]

    async def live_count(self, pipeline: str) -> int:
        count = await self.pool.fetchval(
            "SELECT count(*) FROM live_datums WHERE pipeline = $1", pipeline
        )
        return int(count)

    async def live_recovered(self, pipeline: str) -> list[LiveDatum]:
        rows = await self.pool.fetch(
            "SELECT location, id, job, outcome, output_commit FROM live_datums "
            "WHERE pipeline = $1 AND outcome = 'recovered'",
            pipeline,
        )
        return [_live(r) for r in rows]

    async def outcomes(
        self, pipeline: str, salt: str, ids: Sequence[str]
    ) -> dict[str, PastOutcome]:
        """For each id known under the salt: its latest ended state, and a row
        holding its outputs if it ever succeeded."""
        rows = await self.pool.fetch(
            "SELECT id, state, job, output_commit, finished FROM datums "
            "WHERE pipeline = $1 AND salt = $2 AND id = ANY($3::text[]) "
            "AND state IN ('success', 'skipped', 'failed', 'recovered') "
            "ORDER BY finished NULLS FIRST, seq",
            pipeline,
            salt,
            list(ids),
        )
        latest: dict[str, str] = {}
        output: dict[str, tuple[str, CommitId | None]] = {}
        for r in rows:
            state = "success" if r["state"] == "skipped" else r["state"]
            latest[r["id"]] = state
            if state == "success":
                commit = CommitId(r["output_commit"]) if r["output_commit"] is not None else None
                output[r["id"]] = (r["job"], commit)
        out = {}
        for did, state in latest.items():
            job, commit = output.get(did, (None, None))
            out[did] = PastOutcome(state, job, commit, did in output)
        return out

    async def all_outcomes(self, pipeline: str, salt: str) -> dict[str, tuple[str, str]]:
        """Every datum id ever ended under the salt: (its latest outcome, location)."""
        rows = await self.pool.fetch(
            "SELECT DISTINCT ON (id) id, state, location FROM datums "
            "WHERE pipeline = $1 AND salt = $2 "
            "AND state IN ('success', 'skipped', 'failed', 'recovered') "
            "ORDER BY id, finished DESC NULLS LAST, seq DESC",
            pipeline,
            salt,
        )
        return {
            r["id"]: ("success" if r["state"] == "skipped" else r["state"], r["location"])
            for r in rows
        }

    # -- datums ----------------------------------------------------------------------

    async def lease(
        self,
        worker: str,
        limit: int,
        now: int,
        until: int,
        pipelines: Sequence[str] | None = None,
        jobs: Sequence[str] | None = None,
        floor: int = 0,
    ) -> list[DatumRow]:
        """Up to `limit` pending datums of active jobs (of `pipelines` and
        `jobs` when given), now running under new attempts held by `worker`
        until `until`, in queue order from seq `floor` on (see Jobs.lease:
        the floor skips the dead index entries of datums already leased)."""
        # One table, one index in ORDER BY order: with a join to jobs here the
        # planner, on stale statistics, sorted every pending datum per lease.
        # Only active jobs have pending datums (stop kills them); the EXISTS
        # keeps that true even if a row were left behind.
        rows = await self.pool.fetch(
            "UPDATE datums d SET state = 'running', tries = d.tries + 1, "
            "attempt = replace(gen_random_uuid()::text, '-', ''), worker = $2, "
            "lease_until = $4, started = $3, "
            "wait_us = CASE WHEN d.tries = 0 THEN $3 - d.queued ELSE d.wait_us END "
            "FROM (SELECT p.job, p.id FROM datums p "
            "      WHERE p.state = 'pending' AND p.seq >= $7 "
            "      AND ($5::text[] IS NULL OR p.pipeline = ANY($5::text[])) "
            "      AND ($6::text[] IS NULL OR p.job = ANY($6::text[])) "
            "      ORDER BY p.seq LIMIT $1 FOR UPDATE OF p SKIP LOCKED) picked "
            "WHERE d.job = picked.job AND d.id = picked.id "
            "AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = d.job "
            "            AND j.state IN ('created', 'running')) "
            "RETURNING d.*",
            limit,
            worker,
            now,
            until,
            list(pipelines) if pipelines is not None else None,
            list(jobs) if jobs is not None else None,
            floor,
        )
        return [_datum(r) for r in rows]

    async def set_opens(
        self, attempt: str, out_open: CommitId | None, in_open: dict[str, str]
    ) -> bool:
        status = await self.pool.execute(
            "UPDATE datums SET out_open = $2, in_open = $3 WHERE attempt = $1 "
            "AND state = 'running'",
            attempt,
            out_open,
            json.dumps(in_open),
        )
        return bool(status == "UPDATE 1")

    async def release(self, attempts: Sequence[str]) -> dict[str, DatumRow]:
        """Running attempts back to pending, their try not counted; by attempt,
        the rows as they were (with the buckets to drop)."""
        rows = await self.pool.fetch(
            "WITH old AS (SELECT * FROM datums WHERE attempt = ANY($1::text[]) "
            "AND state = 'running' FOR UPDATE) "
            "UPDATE datums d SET state = 'pending', tries = d.tries - 1, attempt = NULL, "
            "lease_until = NULL, out_open = NULL, in_open = '{}', started = NULL "
            "FROM old WHERE d.job = old.job AND d.id = old.id RETURNING old.*",
            list(attempts),
        )
        return {r["attempt"]: _datum(r) for r in rows}

    async def heartbeat(self, attempts: Sequence[str], until: int) -> set[str]:
        rows = await self.pool.fetch(
            "UPDATE datums SET lease_until = $2 WHERE attempt = ANY($1::text[]) "
            "AND state = 'running' RETURNING attempt",
            list(attempts),
            until,
        )
        return {r["attempt"] for r in rows}

    async def by_attempt(self, attempt: str) -> DatumRow | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM datums WHERE attempt = $1 AND state = 'running'", attempt
        )
        return _datum(row) if row is not None else None

    async def end_attempt(
        self,
        attempt: str,
        state: str,
        now: int,
        *,
        output_commit: CommitId | None = None,
        error: str = "",
        exit_code: int | None = None,
        timings: tuple[int, int, int] = (0, 0, 0),
    ) -> DatumRow | None:
        """The running attempt ends: its datum to `state` (pending for a retry).
        None when the attempt is no longer held."""
        row = await self.pool.fetchrow(
            "UPDATE datums SET state = $2, attempt = NULL, lease_until = NULL, "
            "out_open = NULL, in_open = '{}', output_commit = $4, error = $5, exit_code = $6, "
            "download_us = download_us + $7, process_us = process_us + $8, "
            "upload_us = upload_us + $9, "
            "finished = CASE WHEN $2::text = 'pending' THEN NULL ELSE $3::bigint END "
            "WHERE attempt = $1 AND state = 'running' RETURNING *",
            attempt,
            state,
            now,
            output_commit,
            error,
            exit_code,
            *timings,
        )
        return _datum(row) if row is not None else None

    async def expired(self, now: int, since: int = 0, limit: int = 1000) -> list[DatumRow]:
        """Running datums whose lease ended before `now` (and not before
        `since`: the caller's last pass, so dead entries are not re-read)."""
        rows = await self.pool.fetch(
            "SELECT * FROM datums WHERE state = 'running' AND lease_until < $1 "
            "AND lease_until >= $3 ORDER BY lease_until LIMIT $2",
            now,
            limit,
            since,
        )
        return [_datum(r) for r in rows]

    async def has_open(self, job: str) -> bool:
        """Whether any datum of the job is pending or running: one probe from
        the newest datum down, where the open ones are (migration 0012)."""
        found = await self.pool.fetchval(
            "SELECT 1 FROM datums WHERE job = $1 AND state IN ('pending', 'running') "
            "ORDER BY seq DESC LIMIT 1",
            job,
        )
        return found is not None

    async def counts(self, job: str) -> dict[str, int]:
        rows = await self.pool.fetch(
            "SELECT state, count(*) AS n FROM datums WHERE job = $1 GROUP BY state", job
        )
        return {r["state"]: r["n"] for r in rows}

    async def timing_totals(self, job: str) -> dict[str, int]:
        row = await self.pool.fetchrow(
            "SELECT coalesce(sum(download_us), 0)::bigint AS download, "
            "coalesce(sum(process_us), 0)::bigint AS process, "
            "coalesce(sum(upload_us), 0)::bigint AS upload, "
            "coalesce(sum(wait_us), 0)::bigint AS wait FROM datums WHERE job = $1",
            job,
        )
        assert row is not None
        return dict(row)

    async def job_datums(
        self, job: str, state: str | None, after_seq: int, limit: int
    ) -> list[DatumRow]:
        rows = await self.pool.fetch(
            "SELECT * FROM datums WHERE job = $1 AND ($2::text IS NULL OR state = $2) "
            "AND seq > $3 ORDER BY seq LIMIT $4",
            job,
            state,
            after_seq,
            limit,
        )
        return [_datum(r) for r in rows]

    async def finished_datums(self, job: str) -> list[DatumRow]:
        """The job's datums with outputs to place: ran, reused or recovered."""
        rows = await self.pool.fetch(
            "SELECT * FROM datums WHERE job = $1 AND state IN ('success', 'skipped', 'recovered') "
            "ORDER BY seq",
            job,
        )
        return [_datum(r) for r in rows]

    async def get_datum(self, job: str, ident: str) -> DatumRow:
        if len(ident) >= 32:
            row = await self.pool.fetchrow(
                "SELECT * FROM datums WHERE job = $1 AND id = $2", job, ident
            )
            if row is None:
                raise errors.DatumNotFound(f"{job}/{ident}")
            return _datum(row)
        rows = await self.pool.fetch(
            "SELECT * FROM datums WHERE job = $1 AND id >= $2 AND id < $2 || 'g' LIMIT 2",
            job,
            ident,
        )
        if len(ident) < 6 or not rows:
            raise errors.DatumNotFound(f"{job}/{ident}")
        if len(rows) > 1:
            raise errors.AmbiguousRef(f"{ident} matches several datums of job {job}")
        return _datum(rows[0])

    async def datums_by_key(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], DatumRow]:
        rows = await self.pool.fetch(
            "SELECT d.* FROM datums d JOIN unnest($1::text[], $2::text[]) AS k(job, id) "
            "ON d.job = k.job AND d.id = k.id",
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        return {(r["job"], r["id"]): _datum(r) for r in rows}

    async def restart_datum(self, job: str, datum: str, now: int) -> DatumRow:
        row = await self.pool.fetchrow(
            "UPDATE datums SET state = 'pending', tries = 0, error = '', queued = $3, "
            "finished = NULL WHERE job = $1 AND id = $2 AND state IN ('failed', 'recovered') "
            "RETURNING *",
            job,
            datum,
            now,
        )
        if row is None:
            raise errors.DatumNotRestartable(
                f"{job}/{datum}: only a failed or recovered datum can be restarted"
            )
        return _datum(row)

    async def open_attempts(self, job: str) -> list[DatumRow]:
        rows = await self.pool.fetch(
            "SELECT * FROM datums WHERE job = $1 AND state = 'running'", job
        )
        return [_datum(r) for r in rows]

    async def datums_reading(
        self, pipeline: str, repo: str, key: str, content_hex: str
    ) -> list[DatumRow]:
        """Datums of `pipeline` whose inputs hold that file (with that content)."""
        probe = json.dumps([{"repo": repo, "files": [[key, content_hex]]}])
        rows = await self.pool.fetch(
            "SELECT * FROM datums WHERE pipeline = $1 AND inputs @> $2::jsonb "
            "AND state IN ('success', 'skipped') ORDER BY seq",
            pipeline,
            probe,
        )
        return [_datum(r) for r in rows]

    # -- logs ------------------------------------------------------------------------

    async def add_logs(self, lines: Sequence[LogLine]) -> None:
        if not lines:
            return
        await self.pool.executemany(
            "INSERT INTO datum_logs (job, pipeline, datum, try, worker, stream, text, time) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [
                (x.job, x.pipeline, x.datum, x.try_, x.worker, x.stream, x.text, x.time)
                for x in lines
            ],
        )

    async def logs(
        self,
        pipeline: str | None,
        job: str | None,
        datum: str | None,
        after: int,
        limit: int,
    ) -> list[LogLine]:
        rows = await self.pool.fetch(
            "SELECT seq, job, pipeline, datum, try AS try_, worker, stream, text, time "
            "FROM datum_logs WHERE seq > $1 AND ($2::text IS NULL OR pipeline = $2) "
            "AND ($3::text IS NULL OR job = $3) AND ($4::text IS NULL OR datum LIKE $4 || '%') "
            "ORDER BY seq LIMIT $5",
            after,
            pipeline,
            job,
            datum,
            limit,
        )
        return [LogLine(**dict(r)) for r in rows]


def _input(i: JobInput) -> dict[str, str]:
    return {"name": i.name, "repo": i.repo, "branch": i.branch, "commit": i.commit}


def _live(r: asyncpg.Record) -> LiveDatum:
    commit = CommitId(r["output_commit"]) if r["output_commit"] is not None else None
    return LiveDatum(r["location"], r["id"], r["job"], r["outcome"], commit)
