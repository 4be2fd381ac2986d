"""Control API operations on jobs, their datums and their logs: list, inspect,
stop a job; list, inspect, restart a datum; read logs (docs/design/jobs.md)."""

from __future__ import annotations

from typing import Any

from gateway.api import encode
from gateway.api.errors import bad_request
from gateway.api.table import PAGE, Call, Param, op, page
from versioning.control import Control
from versioning.pipelines.jobs import DatumRow, JobRow, LogLine, lease_document
from versioning.pipelines.lineage import job_summary
from versioning.pipelines.spec import PipelineSpec

JOB = Param("job", "path", "job id (or a unique prefix of 8+ characters)", True)
DATUM = Param("datum", "path", "datum id (or a unique prefix of 6+ characters)", True)
JOB_STATES = ("created", "running", "success", "failure", "killed")
DATUM_STATES = ("pending", "running", "success", "failed", "skipped", "recovered", "killed")


def _cursor(call: Call) -> int | None:
    text = call.q("cursor")
    if not text:
        return None
    if not text.isdigit():
        raise bad_request("cursor must be the next_cursor of the previous page")
    return int(text)


def _state(call: Call, allowed: tuple[str, ...]) -> str | None:
    state = call.q("state")
    if state is not None and state not in allowed:
        raise bad_request(f"state must be one of {', '.join(allowed)}")
    return state


def _seconds(us: int | None) -> float | None:
    return None if us is None else round(us / 1e6, 6)


def job_json(job: JobRow, counts: dict[str, int], timings: dict[str, int]) -> dict[str, Any]:
    summary = job_summary(job, counts)
    return {
        "id": job.id,
        "pipeline": job.pipeline,
        "version": job.version,
        "state": job.state,
        "reason": job.reason,
        "created": encode.time_text(job.created),
        "started": encode.time_text(job.started),
        "finished": encode.time_text(job.finished),
        "duration": _seconds(job.finished - job.created) if job.finished else None,
        "inputs": [
            {"name": i.name, "repo": i.repo, "branch": i.branch, "commit": i.commit or None}
            for i in job.inputs
        ],
        "commit_set": job.commit_set,
        "base_job": job.base_job,
        "output_commit": job.output_commit.hex() if job.output_commit else None,
        "datums": summary["datums"],
        "plan": {
            k: job.stats.get(k)
            for k in ("plan", "plan_seconds", "listed_keys", "run", "reused", "removed", "reasons")
        },
        # Where the time goes: summed over the job's datums, in seconds.
        "timings": {k: _seconds(v) for k, v in timings.items()},
        "stats": job.stats,
    }


def datum_json(row: DatumRow, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "job": row.job,
        "id": row.id,
        "pipeline": row.pipeline,
        "state": row.state,
        "reason": row.reason,
        "tries": row.tries,
        "worker": row.worker or None,
        "error": row.error,
        "exit_code": row.exit_code,
        "reused_from": row.reused_from,
        "output_commit": row.output_commit.hex() if row.output_commit else None,
        "queued": encode.time_text(row.queued),
        "started": encode.time_text(row.started),
        "finished": encode.time_text(row.finished),
        "timings": {
            "wait": _seconds(row.wait_us),
            "download": _seconds(row.download_us),
            "process": _seconds(row.process_us),
            "upload": _seconds(row.upload_us),
        },
        "inputs": [
            {
                "name": i["name"],
                "repo": i["repo"],
                "branch": i["branch"],
                "commit": i["commit"] or None,
                "path": i["path"],
                "files": len(i["files"]),
                "bytes": sum(int(f[2]) for f in i["files"]),
            }
            for i in row.inputs
        ],
    }
    if detail:
        out["files"] = [
            {
                "input": i["name"],
                "repo": i["repo"],
                "commit": i["commit"],
                "key": f[0],
                "size": f[2],
            }
            for i in row.inputs
            for f in i["files"]
        ]
    return out


def replay_lease(job: JobRow, row: DatumRow, spec: PipelineSpec) -> dict[str, Any]:
    """The datum's exact inputs and command, as a lease without an attempt or
    an output bucket: what `loxo datum run --local` runs again elsewhere."""
    return lease_document(job, row, spec, {}, None)


async def _job_doc(ctl: Control, job: JobRow) -> dict[str, Any]:
    return job_json(job, await ctl.jobs.counts(job.id), await ctl.jobs.timings(job.id))


@op(
    "GET",
    "/jobs",
    "List jobs, newest first",
    params=(
        Param("pipeline", "query", "only this pipeline's jobs"),
        Param("state", "query", "only jobs in this state: " + ", ".join(JOB_STATES)),
        *PAGE,
    ),
    returns="list:Job",
)
async def list_jobs(ctl: Control, call: Call) -> Any:
    limit = call.limit()
    jobs = await ctl.jobs.list_jobs(
        call.q("pipeline"), _state(call, JOB_STATES), _cursor(call), limit + 1
    )
    items = [await _job_doc(ctl, j) for j in jobs[:limit]]
    more = len(jobs) > limit
    return page(items, str(jobs[limit - 1].created) if more else None)


@op("GET", "/jobs/{job}", "Inspect a job", params=(JOB,), returns="Job")
async def inspect_job(ctl: Control, call: Call) -> Any:
    return await _job_doc(ctl, await ctl.jobs.get(call.params["job"]))


@op(
    "POST",
    "/jobs/{job}/stop",
    "Stop a job: its pending and running datums are killed; the output branch stays",
    params=(JOB,),
    returns="Job",
)
async def stop_job(ctl: Control, call: Call) -> Any:
    return await _job_doc(ctl, await ctl.jobs.stop(call.params["job"], "stopped by a user"))


@op(
    "GET",
    "/jobs/{job}/datums",
    "List a job's datums (those it ran or reused; unchanged ones are counted in the job)",
    params=(
        JOB,
        Param("state", "query", "only datums in this state: " + ", ".join(DATUM_STATES)),
        *PAGE,
    ),
    returns="list:Datum",
)
async def list_datums(ctl: Control, call: Call) -> Any:
    limit = call.limit()
    rows = await ctl.jobs.datums(
        call.params["job"], _state(call, DATUM_STATES), _cursor(call) or 0, limit + 1
    )
    more = len(rows) > limit
    return page([datum_json(r) for r in rows[:limit]], str(rows[limit - 1].seq) if more else None)


@op(
    "GET",
    "/jobs/{job}/datums/{datum}",
    "Inspect a datum: its input files, state, tries, timings, and the lease to replay it",
    params=(JOB, DATUM),
    returns="Datum",
)
async def inspect_datum(ctl: Control, call: Call) -> Any:
    job, row, spec = await ctl.jobs.datum(call.params["job"], call.params["datum"])
    doc = datum_json(row, detail=True)
    doc["lease"] = replay_lease(job, row, spec)
    return doc


@op(
    "POST",
    "/jobs/{job}/datums/{datum}/restart",
    "Run a failed datum again, with fresh tries (a failed job runs again)",
    params=(JOB, DATUM),
    returns="Datum",
)
async def restart_datum(ctl: Control, call: Call) -> Any:
    return datum_json(await ctl.jobs.restart_datum(call.params["job"], call.params["datum"]))


def _log(x: LogLine) -> dict[str, Any]:
    return {
        "seq": x.seq,
        "job": x.job,
        "pipeline": x.pipeline,
        "datum": x.datum,
        "try": x.try_,
        "worker": x.worker,
        "stream": x.stream,
        "text": x.text,
        "time": encode.time_text(x.time),
    }


@op(
    "GET",
    "/logs",
    "Datum logs (stdout, stderr, and loxo's own notes), oldest first",
    params=(
        Param("pipeline", "query", "only this pipeline's"),
        Param("job", "query", "only this job's"),
        Param("datum", "query", "only this datum's (an id or prefix)"),
        *PAGE,
    ),
    returns="list:LogLine",
)
async def logs(ctl: Control, call: Call) -> Any:
    limit = call.limit()
    after = _cursor(call) or 0
    lines = await ctl.jobs.logs(call.q("pipeline"), call.q("job"), call.q("datum"), after, limit)
    # The cursor always continues after the last line, so `logs -f` can poll it.
    last = lines[-1].seq if lines else after
    return page([_log(x) for x in lines], str(last))
