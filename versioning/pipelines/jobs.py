"""Jobs and datums: starting a job over the inputs' heads, leasing its datums
to workers, recording their outcomes, and ending the job with ONE output
commit (docs/design/jobs.md).

A datum attempt writes into its own output bucket (an open commit on the
output repo whose staging tree starts empty); on success the staging head is
frozen and kept as the datum's output commit, so a dead worker's partial
writes are never seen and a retry starts clean. The job's output commit is
built from those per-datum commits (output.py).
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from versioning import errors
from versioning.clock import now_us
from versioning.committer import Change, Committer
from versioning.db import Database
from versioning.db.jobs import DatumRow, JobInput, JobRow, LogLine
from versioning.ids import CommitId, ContentId
from versioning.model import ObjectEntry, OpenCommit
from versioning.pipelines import output
from versioning.pipelines.cron import effective, effective_input
from versioning.pipelines.datums import PastDatum
from versioning.pipelines.job_plan import JobPlanner, Reader
from versioning.pipelines.service import Pipeline, Pipelines
from versioning.pipelines.spec import Pfs, PipelineSpec, iter_leaves, parse_spec
from versioning.views import ObjectAttrs, new_entry

log = logging.getLogger("loxo.pipelines")

DEFAULT_LEASE_SECONDS = 30.0
# A worker's stdout and stderr are kept up to this many characters (the tail).
LOG_TAIL = 64 * 1024
MAX_LEASE_BATCH = 100
# Small files travel inside the lease and the complete call instead of one S3
# request each (most datums of a per-file pipeline are a few KiB each way).
# Bounded: a file at most INLINE_FILE, a lease batch's inputs at most
# INLINE_INPUTS, an attempt's outputs at most INLINE_OUTPUTS (the complete
# call's JSON body, base64, stays under the control API's 1 MiB).
INLINE_FILE = 64 * 1024
INLINE_INPUTS = 1024 * 1024
INLINE_OUTPUTS = 256 * 1024
# What an S3 PUT without a Content-Type stores (s3api's default).
OUTPUT_ATTRS = ObjectAttrs("binary/octet-stream", {}, {})
# An open commit of a datum attempt is dropped with its lease; this idle limit
# only frees one the lease sweeper could not reach (a crash in between).
ATTEMPT_IDLE_US = 24 * 3600 * 1_000_000


@dataclass(frozen=True, slots=True)
class Completion:
    attempt: str
    outcome: str  # success, failed or recovered
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str = ""
    download: float = 0.0
    process: float = 0.0
    upload: float = 0.0
    # Small output files sent with the outcome: (key, body), committed to the
    # attempt's output bucket before it is frozen.
    outputs: tuple[tuple[str, bytes], ...] = ()


def lease_document(
    job: JobRow,
    row: DatumRow,
    spec: PipelineSpec,
    in_open: Mapping[str, str],
    output_bucket: str | None,
) -> dict[str, Any]:
    """What a worker needs to run a datum (docs/design/jobs.md's Lease): an
    attempt's, or, with no output bucket and no attempt, a replay's. Inputs
    read their datum bucket when they have one (`in_open`), else the commit's
    snapshot bucket."""
    t = spec.transform
    inputs = []
    for inp in row.inputs:
        name = str(inp["name"])
        bucket = (
            f"{inp['repo']}.{in_open[name]}"
            if name in in_open
            else (f"{inp['repo']}.{inp['commit']}" if inp["commit"] else None)
        )
        inputs.append(
            {
                "name": name,
                "repo": inp["repo"],
                "branch": inp["branch"],
                "commit": inp["commit"],
                "path": inp["path"],
                "s3": bool(inp.get("s3")),
                "bucket": bucket,
                "files": [{"key": f[0], "size": f[2]} for f in inp["files"]],
            }
        )
    return {
        "attempt": row.attempt if output_bucket is not None else None,
        "job": row.job,
        "datum": row.id,
        "pipeline": job.pipeline,
        "version": job.version,
        "try": row.tries,
        "datum_tries": spec.datum_tries,
        "transform": {
            "cmd": list(t.cmd),
            "stdin": list(t.stdin),
            "env": dict(t.env),
            "err_cmd": list(t.err_cmd),
            "err_stdin": [],
            "accept_return_code": list(t.accept_return_code),
        },
        "datum_timeout": spec.datum_timeout or 0,
        "inputs": inputs,
        "output_bucket": output_bucket,
        "s3_out": spec.s3_out,
        **(
            {"inline_outputs": {"file": INLINE_FILE, "total": INLINE_OUTPUTS}}
            if output_bucket is not None and not spec.s3_out
            else {}
        ),
    }


def _bucket_id() -> CommitId:
    """A random open-commit id whose hex starts with a letter (a-f): a datum's
    bucket `<repo>.<hex>` is then a host name java.net.URI accepts (its last
    label must start with a letter), so Hadoop S3A can address it."""
    while True:
        ident = os.urandom(16)
        if ident[0] >= 0xA0:
            return CommitId(ident)


class Jobs:
    def __init__(
        self,
        db: Database,
        reader: Reader,
        committer: Committer,
        pipelines: Pipelines,
        author: str = "loxo",
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.db = db
        self.reader = reader
        self.committer = committer
        self.pipelines = pipelines
        self.author = author
        self.lease_seconds = lease_seconds
        self.planner = JobPlanner(db, reader)
        committer.on_commit.append(self._committed)
        # Set when datums may have become leasable (a long-polling lease wakes).
        self.work_ready = asyncio.Event()
        # Set when inputs, pipelines or jobs changed (the scheduler's full tick).
        self.changed = asyncio.Event()
        # Set when a datum ended: its job may be done (the scheduler settles).
        self.datum_ended = asyncio.Event()
        self._specs: dict[tuple[str, int, str], PipelineSpec] = {}
        self._job_versions: dict[str, int] = {}
        # Called with each successful job (egress).
        self.on_success: list[Callable[[JobRow, PipelineSpec], Any]] = []
        self._hooks: set[asyncio.Task[None]] = set()
        # Set when the server shuts down: long-polling leases answer at once.
        self.closing = False
        # Where each lease filter's queue scan starts: every pending datum at
        # or above it, the ones below it all leased (by this process's view).
        # Datums this process puts back lower it; another gateway's retries
        # below it are found once the scan from the floor comes up short.
        self._floors: dict[tuple[tuple[str, ...] | None, tuple[str, ...] | None], int] = {}
        # Leases that ended before this were expired by an earlier pass.
        self._expiry_since = 0

    def _committed(self, repo: str, branch: str) -> None:
        # Any commit may move an input: the scheduler looks now. (Staging
        # branches of datum buckets move all the time; they wake nobody.)
        if not branch.startswith("_"):
            self.changed.set()

    # -- specs -----------------------------------------------------------------------

    async def spec(self, pipeline: str, version: int, salt: str) -> PipelineSpec:
        """The spec of a pipeline's version. Cached by (name, version, salt): a
        pipeline deleted and created again under its name has a new salt."""
        key = (pipeline, version, salt)
        found = self._specs.get(key)
        if found is None:
            text = await self.db.pipelines.get_version(pipeline, version)
            found = self._specs[key] = parse_spec(json.loads(text))
        return found

    async def _version(self, job: str) -> int:
        """The pipeline version a job runs (never changes: cached)."""
        version = self._job_versions.get(job)
        if version is None:
            if len(self._job_versions) > 10_000:
                self._job_versions.clear()
            version = self._job_versions[job] = (await self.db.jobs.get_job(job)).version
        return version

    # -- starting jobs ---------------------------------------------------------------

    async def heads(self, spec: PipelineSpec) -> dict[str, JobInput] | None:
        """Each pfs input's branch head; None when an input repo or branch is
        missing (the pipeline waits for it)."""
        out: dict[str, JobInput] = {}
        for _, leaf in iter_leaves(effective_input(spec)):
            if not isinstance(leaf, Pfs):
                continue
            try:
                branch = await self.db.refs.get_branch(leaf.repo, leaf.branch)
            except errors.NotFound:
                return None
            commit = branch.head.hex() if branch.head is not None else ""
            out[leaf.name] = JobInput(leaf.name, leaf.repo, leaf.branch, commit)
        return out

    async def maybe_start(self, pipeline: Pipeline) -> JobRow | None:
        """A new job when the inputs' heads, the version or the salt moved since
        the pipeline's last job (and none is active); else None."""
        if pipeline.state != "running":
            return None
        inputs = await self.heads(pipeline.spec)
        if not inputs or not any(i.commit for i in inputs.values()):
            return None
        last = await self.db.jobs.last_job(pipeline.name)
        if last is not None:
            if last.state in ("created", "running"):
                return None
            if (
                last.version == pipeline.version
                and last.salt == pipeline.salt
                and {i.name: i.commit for i in last.inputs}
                == {n: i.commit for n, i in inputs.items()}
            ):
                return None
        return await self.start(pipeline, inputs, last)

    async def start(
        self, pipeline: Pipeline, inputs: dict[str, JobInput], last: JobRow | None
    ) -> JobRow:
        spec = pipeline.spec
        await self._output_branch(pipeline.name, spec.output_branch)
        base = await self.db.jobs.last_job(pipeline.name, success=True)
        base_spec = None
        if base is not None:
            base_spec = await self.spec(base.pipeline, base.version, base.salt)
        plan = await self.planner.plan(
            pipeline.name,
            effective(spec),
            pipeline.salt,
            inputs,
            base,
            effective(base_spec) if base_spec is not None else None,
        )
        now = now_us()
        job = JobRow(
            id=secrets.token_hex(16),
            pipeline=pipeline.name,
            version=pipeline.version,
            salt=pipeline.salt,
            state="created",
            created=now,
            started=None,
            finished=None,
            inputs=tuple(inputs.values()),
            commit_set=await self._commit_set(inputs, last),
            base_job=base.id if base is not None else None,
            output_commit=None,
            reason="",
            removed=tuple(plan.removed),
            stats={
                "plan": plan.kind,
                "plan_seconds": round(plan.seconds, 6),
                "listed_keys": plan.listed_keys,
                "run": len(plan.run),
                "reused": len(plan.reuse),
                "removed": len(plan.removed),
                "unchanged": plan.unchanged,
                "reasons": plan.reasons,
            },
        )
        await self.db.jobs.create_job(job, [*plan.run, *plan.reuse])
        self.work_ready.set()
        self.changed.set()
        return job

    async def _output_branch(self, repo: str, branch: str) -> None:
        try:
            await self.db.refs.get_branch(repo, branch)
        except errors.BranchNotFound:
            with contextlib.suppress(errors.BranchExists):
                await self.db.refs.create_branch_at(repo, branch, None)

    async def _commit_set(self, inputs: dict[str, JobInput], last: JobRow | None) -> str:
        """The commit set of the newest input commit that moved: an output
        commit joins the set of the change that caused it."""
        before = {i.name: i.commit for i in last.inputs} if last is not None else {}
        newest: tuple[int, str] | None = None
        for name, inp in inputs.items():
            if not inp.commit or before.get(name) == inp.commit:
                continue
            commit = await self.db.objects.get_commit(CommitId(bytes.fromhex(inp.commit)))
            its = str(commit.origin.get("commit_set") or inp.commit)
            if newest is None or commit.time > newest[0]:
                newest = (commit.time, its)
        return newest[1] if newest is not None else secrets.token_hex(16)

    # -- leasing ---------------------------------------------------------------------

    async def lease(
        self,
        worker: str,
        limit: int,
        wait_seconds: float = 0.0,
        pipelines: builtins.list[str] | None = None,
        gone: Callable[[], Awaitable[bool]] | None = None,
        jobs: builtins.list[str] | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """Up to `limit` datums for `worker`, each with everything it needs to
        run (docs/design/jobs.md's Lease), only of `pipelines` and of `jobs`
        when given. Waits up to `wait_seconds` for one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while True:
            self.work_ready.clear()
            rows = await self._lease_rows(worker, min(limit, MAX_LEASE_BATCH), pipelines, jobs)
            if rows:
                leases = []
                rows_jobs: dict[str, JobRow] = {}
                budget = [INLINE_INPUTS]
                for row in rows:
                    lease = await self._prepare(row, rows_jobs)
                    if lease is not None:
                        await self._inline_inputs(lease, row, budget)
                        leases.append(lease)
                if leases and gone is not None and await gone():
                    # The worker hung up while we waited: nobody would run these.
                    await self._release(rows)
                    return []
                if leases:
                    return leases
            left = deadline - loop.time()
            if left <= 0 or self.closing or (gone is not None and await gone()):
                return []
            # Another gateway's new work wakes nobody here: poll as well.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.work_ready.wait(), min(left, 1.0))

    async def _lease_rows(
        self,
        worker: str,
        limit: int,
        pipelines: builtins.list[str] | None,
        jobs: builtins.list[str] | None = None,
    ) -> builtins.list[DatumRow]:
        """Leased rows in queue order: from the filter's floor, then, if that
        falls short, from the start (datums put back below the floor)."""
        key = (
            tuple(sorted(pipelines)) if pipelines is not None else None,
            tuple(sorted(jobs)) if jobs is not None else None,
        )
        floor = self._floors.get(key, 0)
        now = now_us()
        until = now + int(self.lease_seconds * 1e6)
        lease = self.db.jobs.lease
        rows = await lease(worker, limit, now, until, pipelines, jobs, floor)
        if len(rows) < limit and floor > 0:
            rows += await lease(worker, limit - len(rows), now, until, pipelines, jobs, 0)
        if rows:
            if len(self._floors) > 256:
                self._floors.clear()  # many distinct filters: start over, still correct
            self._floors[key] = max(floor, max(r.seq for r in rows) + 1)
        return rows

    def _requeued(self, rows: Iterable[DatumRow]) -> None:
        """Datums back to pending: every floor drops to the lowest of them."""
        low = min((r.seq for r in rows), default=None)
        if low is not None:
            for key, floor in self._floors.items():
                self._floors[key] = min(floor, low)
        self.work_ready.set()

    async def _release(self, rows: builtins.list[DatumRow]) -> None:
        """Leased datums back to pending, the try not counted."""
        held = [r for r in rows if r.attempt is not None]
        released = await self.db.jobs.release([r.attempt for r in held if r.attempt])
        for row in held:
            if row.attempt in released:
                fresh = released[row.attempt]
                await self._drop_opens(row.pipeline, fresh.out_open, fresh.in_open, row.inputs)
        self._requeued(held)

    def close(self) -> None:
        """Stop long polls: the server is going away."""
        self.closing = True
        self.work_ready.set()

    async def _prepare(self, row: DatumRow, jobs: dict[str, JobRow]) -> dict[str, Any] | None:
        assert row.attempt is not None
        job = jobs.get(row.job)
        if job is None:
            job = jobs[row.job] = await self.db.jobs.get_job(row.job)
            if job.state == "created":
                await self.db.jobs.set_job_running(job.id, now_us())
        spec = await self.spec(job.pipeline, job.version, job.salt)
        try:
            out_open = await self._open(job.pipeline, spec.output_branch)
            in_open: dict[str, str] = {}
            for inp in row.inputs:
                if inp.get("s3"):
                    in_open[str(inp["name"])] = (await self._input_bucket(inp)).hex()
        except errors.VersioningError as exc:
            await self._end(row, "failed", f"could not prepare the datum's buckets: {exc}")
            return None
        if not await self.db.jobs.set_opens(row.attempt, out_open, in_open):
            await self._drop_opens(job.pipeline, out_open, in_open, row.inputs)
            return None
        return lease_document(job, row, spec, in_open, f"{job.pipeline}.{out_open.hex()}")

    async def _inline_inputs(self, lease: dict[str, Any], row: DatumRow, budget: list[int]) -> None:
        """Small files-mode input files get their bytes in the lease, while
        `budget` (bytes, shared by a lease batch) lasts."""
        for inp, source in zip(lease["inputs"], row.inputs, strict=True):
            if inp["s3"] or not inp["commit"]:
                continue
            for item, (_, content_hex, size) in zip(inp["files"], source["files"], strict=True):
                if size > INLINE_FILE or size > budget[0] or item["key"].endswith("/"):
                    continue
                body = await self.reader.small_content(
                    str(inp["repo"]), ContentId(bytes.fromhex(content_hex)), INLINE_FILE
                )
                if body is not None and len(body) == size:
                    item["body"] = base64.b64encode(body).decode()
                    budget[0] -= size

    async def _open(self, repo: str, branch: str) -> CommitId:
        """An open commit on `repo` whose staging tree starts empty."""
        record = OpenCommit(
            id=_bucket_id(),
            repo=repo,
            branch=branch,
            base=None,
            created=now_us(),
            idle_us=ATTEMPT_IDLE_US,
            author=self.author,
        )
        await self.db.open_commits.create_open_commit(record)
        return record.id

    async def _input_bucket(self, inp: Mapping[str, Any]) -> CommitId:
        """An open commit on the input repo holding only this datum's files."""
        repo = str(inp["repo"])
        ident = await self._open(repo, str(inp["branch"]))
        view = await self.reader.snapshot_view(repo, str(inp["commit"]))
        edits: dict[str, ObjectEntry | None] = {}
        for key, *_ in inp["files"]:
            edits[key] = await self.reader.get_entry(view, key)
        # The input's own entries: their times are the input's, not now.
        await self._stage(repo, ident, edits, "datum input", keep_times=True)
        return ident

    async def _drop_opens(
        self,
        output_repo: str,
        out_open: CommitId | None,
        in_open: Mapping[str, str],
        inputs: list[dict[str, Any]],
    ) -> None:
        if out_open is not None:
            await self.db.open_commits.delete_open_commit(output_repo, out_open)
        repos = {str(i["name"]): str(i["repo"]) for i in inputs}
        for name, ident in in_open.items():
            await self.db.open_commits.delete_open_commit(
                repos.get(name, ""), CommitId(bytes.fromhex(ident))
            )

    async def heartbeat(self, attempts: list[str]) -> list[str]:
        """Extend the leases; returns the attempts no longer held."""
        until = now_us() + int(self.lease_seconds * 1e6)
        held = await self.db.jobs.heartbeat(attempts, until)
        return [a for a in attempts if a not in held]

    # -- outcomes ----------------------------------------------------------------------

    async def complete(self, worker: str, result: Completion) -> str:
        """Record an attempt's outcome; the datum's new state. LeaseLost when
        the attempt is no longer held."""
        row = await self.db.jobs.by_attempt(result.attempt)
        if row is None:
            raise errors.LeaseLost(f"attempt {result.attempt} is not held (expired or stopped)")
        spec = await self.spec(row.pipeline, await self._version(row.job), row.salt)
        frozen: CommitId | None = None
        if result.outcome == "success":
            state = "success"
            if row.out_open is not None:
                if result.outputs:
                    await self._commit_outputs(row.pipeline, row.out_open, result.outputs)
                frozen = await self.db.open_commits.freeze_open_commit(row.pipeline, row.out_open)
        elif result.outcome == "recovered":
            state = "recovered"
        else:
            state = "pending" if row.tries < spec.datum_tries else "failed"
        timings = (
            int(result.download * 1e6),
            int(result.process * 1e6),
            int(result.upload * 1e6),
        )
        ended = await self.db.jobs.end_attempt(
            result.attempt,
            state,
            now_us(),
            output_commit=frozen,
            error=result.error[-LOG_TAIL:],
            exit_code=result.exit_code,
            timings=timings,
        )
        if ended is None:
            raise errors.LeaseLost(f"attempt {result.attempt} is not held (expired or stopped)")
        await self._drop_opens(row.pipeline, row.out_open, row.in_open, row.inputs)
        lines = [
            LogLine(
                0,
                row.job,
                row.pipeline,
                row.id,
                row.tries,
                worker,
                stream,
                text[-LOG_TAIL:],
                now_us(),
            )
            for stream, text in (
                ("stdout", result.stdout),
                ("stderr", result.stderr),
                ("loxo", result.error),
            )
            if text
        ]
        await self.db.jobs.add_logs(lines)
        # A success per datum is routine (debug); a retry, failure or recovery is news.
        log.log(
            logging.DEBUG if state == "success" else logging.INFO,
            "datum %s of job %s (%s): %s, try %d, worker %s",
            row.id,
            row.job,
            row.pipeline,
            state,
            row.tries,
            worker,
            extra={
                "event": "datum_ended",
                "job": row.job,
                "pipeline": row.pipeline,
                "datum": row.id,
                "state": state,
                "try": row.tries,
                "worker": worker,
            },
        )
        if state == "pending":
            self._requeued([row])
        self.datum_ended.set()
        return state

    async def _commit_outputs(
        self, repo: str, bucket: CommitId, outputs: tuple[tuple[str, bytes], ...]
    ) -> None:
        """The attempt's inline outputs into its output bucket, as one commit
        (a PUT of each would be one commit each)."""
        edits: dict[str, ObjectEntry | None] = {}
        for key, body in outputs:

            async def pieces(body: bytes = body) -> AsyncIterator[bytes]:
                yield body

            content, stored = await self.reader.store_content(pieces())
            edits[key] = new_entry(content, stored.size, stored.md5.hex(), OUTPUT_ATTRS)
        await self._stage(repo, bucket, edits, "datum outputs")

    async def _stage(
        self,
        repo: str,
        bucket: CommitId,
        edits: dict[str, ObjectEntry | None],
        what: str,
        keep_times: bool = False,
    ) -> None:
        """One commit of `edits` into a datum bucket (an open commit's staging branch)."""
        await self.committer.submit(
            repo,
            OpenCommit.staging_name(bucket),
            Change(
                edits=edits,
                message=what,
                author=self.author,
                origin={"op": what},
                keep_times=keep_times,
            ),
        )

    async def _end(self, row: DatumRow, state: str, error: str) -> None:
        assert row.attempt is not None
        await self.db.jobs.end_attempt(row.attempt, state, now_us(), error=error)
        await self.db.jobs.add_logs(
            [
                LogLine(
                    0, row.job, row.pipeline, row.id, row.tries, row.worker, "loxo", error, now_us()
                )
            ]
        )
        self.datum_ended.set()

    async def expire_leases(self) -> int:
        """Datums whose worker stopped heartbeating go back to pending (or
        fail, out of tries); their attempts' buckets are dropped."""
        now = now_us()
        rows = await self.db.jobs.expired(now, self._expiry_since)
        for row in rows:
            job = await self.db.jobs.get_job(row.job)
            spec = await self.spec(job.pipeline, job.version, job.salt)
            state = "pending" if row.tries < spec.datum_tries else "failed"
            await self._end(
                row,
                state,
                f"lease expired: worker {row.worker!r} stopped heartbeating (try {row.tries})",
            )
            log.warning(
                "lease of datum %s of job %s expired: worker %r stopped heartbeating; now %s",
                row.id,
                row.job,
                row.worker,
                state,
                extra={
                    "event": "lease_expired",
                    "job": row.job,
                    "pipeline": row.pipeline,
                    "datum": row.id,
                    "worker": row.worker,
                    "state": state,
                },
            )
            await self._drop_opens(row.pipeline, row.out_open, row.in_open, row.inputs)
        if rows:
            self._requeued(rows)
        else:
            # Every lease that ended before now is expired. The margin covers
            # other gateways' clocks, which set some of the lease ends.
            self._expiry_since = now - int(max(60.0, 2 * self.lease_seconds) * 1e6)
        return len(rows)

    # -- ending jobs -------------------------------------------------------------------

    async def settle(self, job: JobRow) -> JobRow | None:
        """End `job` if nothing of it is pending or running (or it timed out);
        returns the ended job, or None while it goes on."""
        spec = await self.spec(job.pipeline, job.version, job.salt)
        if spec.job_timeout and now_us() - job.created > spec.job_timeout * 1e6:
            await self.stop(job.id, f"job_timeout of {spec.job_timeout:g} s exceeded")
            return await self.db.jobs.get_job(job.id)
        if await self.db.jobs.has_open(job.id):
            return None
        counts = await self.db.jobs.counts(job.id)
        totals = await self.db.jobs.timing_totals(job.id)
        stats: dict[str, Any] = {"counts": counts, "timings_us": totals}
        failed = counts.get("failed", 0)
        if failed:
            rows = await self.db.jobs.job_datums(job.id, "failed", 0, 5)
            ids = ", ".join(r.id[:12] for r in rows)
            reason = f"{failed} datum(s) failed: {ids}{', ...' if failed > 5 else ''}"
            await self.db.jobs.end_job(job.id, "failure", now_us(), reason, stats=stats)
            return await self.db.jobs.get_job(job.id)
        try:
            built = await output.commit_job(
                self.db, self.reader, self.committer, job, spec, self.author
            )
        except output.DuplicateOutputs as exc:
            await self.db.jobs.end_job(job.id, "failure", now_us(), str(exc), stats=stats)
            return await self.db.jobs.get_job(job.id)
        stats["output"] = built.stats
        ended_here = await self.db.jobs.end_job(
            job.id,
            "success",
            now_us(),
            output_commit=built.commit,
            stats=stats,
            live_remove=job.removed,
            live_put=built.live,
            pipeline=job.pipeline,
        )
        ended = await self.db.jobs.get_job(job.id)
        if not ended_here:
            # Another gateway ended it first (two scheduler leaders for a
            # moment, docs/design/multi-gateway.md): its hooks run there.
            return ended
        for hook in self.on_success:
            # Egress may take long: it must not hold up scheduling.
            task = asyncio.create_task(self._run_hook(hook, ended, spec))
            self._hooks.add(task)
            task.add_done_callback(self._hooks.discard)
        return ended

    async def _run_hook(
        self, hook: Callable[[JobRow, PipelineSpec], Any], job: JobRow, spec: PipelineSpec
    ) -> None:
        try:
            await hook(job, spec)
        except Exception as exc:  # egress failing does not undo the job
            log.warning("after job %s of %s: %s", job.id, job.pipeline, exc)
            await self.db.jobs.set_job_stats(job.id, {"egress_error": str(exc)})

    async def stop(self, ident: str, reason: str = "stopped") -> JobRow:
        job = await self.db.jobs.get_job(ident)
        if job.state not in ("created", "running"):
            raise errors.JobEnded(f"job {job.id} has ended ({job.state})")
        running = await self.db.jobs.open_attempts(job.id)
        await self.db.jobs.end_job(job.id, "killed", now_us(), reason)
        for row in running:
            await self._drop_opens(row.pipeline, row.out_open, row.in_open, row.inputs)
        self.changed.set()
        return await self.db.jobs.get_job(job.id)

    async def restart_datum(self, job_ident: str, datum: str) -> DatumRow:
        """A failed (or recovered) datum runs again with fresh tries; its job,
        if it failed, is running again. Only the pipeline's newest job."""
        job = await self.db.jobs.get_job(job_ident)
        row = await self.db.jobs.get_datum(job.id, datum)
        last = await self.db.jobs.last_job(job.pipeline)
        if last is not None and last.id != job.id:
            raise errors.DatumNotRestartable(
                f"job {job.id} is not its pipeline's newest job ({last.id}): restart there"
            )
        if job.state == "failure":
            await self.db.jobs.reopen_job(job.id)
        elif job.state != "running" and job.state != "created":
            raise errors.DatumNotRestartable(f"job {job.id} has ended ({job.state})")
        restarted = await self.db.jobs.restart_datum(job.id, row.id, now_us())
        self._requeued([restarted])
        return restarted

    # -- reading -----------------------------------------------------------------------

    async def past(self, pipeline: str, salt: str) -> dict[str, PastDatum]:
        """What the plan preview compares with: every outcome under the salt,
        and the live datums (whatever their salt)."""
        out: dict[str, PastDatum] = {}
        for did, (outcome, location) in (await self.db.jobs.all_outcomes(pipeline, salt)).items():
            out[did] = PastDatum(outcome, location, False)  # type: ignore[arg-type]
        for live in await self.db.jobs.live_all(pipeline):
            outcome = "success" if live.outcome == "success" else "recovered"
            out[live.id] = PastDatum(outcome, live.location, True)  # type: ignore[arg-type]
        return out

    async def last_jobs(self) -> dict[str, JobRow]:
        """Each pipeline's newest job."""
        return await self.db.jobs.last_jobs()

    async def get(self, ident: str) -> JobRow:
        return await self.db.jobs.get_job(ident)

    async def counts(self, job: str) -> dict[str, int]:
        return await self.db.jobs.counts(job)

    async def timings(self, job: str) -> dict[str, int]:
        return await self.db.jobs.timing_totals(job)

    async def list_jobs(
        self, pipeline: str | None, state: str | None, before: int | None, limit: int
    ) -> list[JobRow]:
        if pipeline is not None:
            await self.db.pipelines.get_pipeline(pipeline)
        return await self.db.jobs.list_jobs(pipeline, state, before, limit)

    async def datums(
        self, job: str, state: str | None, after: int, limit: int
    ) -> builtins.list[DatumRow]:
        found = await self.db.jobs.get_job(job)
        return await self.db.jobs.job_datums(found.id, state, after, limit)

    async def datum(self, job: str, datum: str) -> tuple[JobRow, DatumRow, PipelineSpec]:
        found = await self.db.jobs.get_job(job)
        return (
            found,
            await self.db.jobs.get_datum(found.id, datum),
            await self.spec(found.pipeline, found.version, found.salt),
        )

    async def logs(
        self, pipeline: str | None, job: str | None, datum: str | None, after: int, limit: int
    ) -> builtins.list[LogLine]:
        if job is not None:
            job = (await self.db.jobs.get_job(job)).id
        return await self.db.jobs.logs(pipeline, job, datum, after, limit)


__all__ = ["Completion", "DatumRow", "JobRow", "Jobs", "LogLine", "lease_document"]
