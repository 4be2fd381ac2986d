"""`loxo job`, `loxo datum` and `loxo logs`: what pipelines ran, how each job
and datum went, where the time went, and what the user code printed.

The server's answers are plain JSON (docs/design/jobs.md); these commands read
them tolerantly (`field`), so a key the server does not send shows as `-`
rather than failing. `lineage.py` (wait, dag, provenance) reuses the helpers.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import typer

from gateway.client import Client, LoxoError
from gateway.commands.common import (
    EXIT_CONFLICT,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    OUTPUT,
    Output,
    client,
    exit_code_for,
    fail,
    human,
    out,
    print_json,
    short,
    table,
    when,
)

# Terminal states (docs/design/jobs.md): a job ends in one of these, and
# `job wait` stops polling there.
JOB_DONE = ("success", "failure", "killed")
JOB_STATES = ("created", "running", *JOB_DONE)
DATUM_STATES = ("pending", "running", "success", "failed", "recovered", "skipped", "killed")
# Datums of a job's inputs that did not change since the job it builds on:
# counted in the job's total but neither listed nor run (nor in DATUM_STATES).
UNCHANGED = "unchanged"
POLL_SECONDS = 0.5

job_app = typer.Typer(
    help="Jobs: one run of a pipeline over its inputs' heads (list, inspect, wait, stop).",
    no_args_is_help=True,
)
datum_app = typer.Typer(
    help="Datums: one unit of a job's work (list, inspect, restart).",
    no_args_is_help=True,
)

# The server takes unique id prefixes (8+ characters of a job's, 6+ of a datum's).
_JOB = typer.Argument(
    ..., metavar="JOB", help="A job id, or a unique prefix of 8+ characters (`loxo job list`)."
)
_DATUM = typer.Argument(
    ...,
    metavar="DATUM",
    help="A datum id, or a unique prefix of 6+ characters (`loxo datum list JOB`).",
)
_TIMEOUT = typer.Option(
    0.0, "--timeout", min=0.0, help="Give up after this many seconds (0: wait forever)."
)


# ---------------------------------------------------------------------- shared helpers


def field(doc: Mapping[str, Any] | None, *names: str) -> Any:
    """The first of `names` that `doc` has (not None): answers may name a
    field differently or leave it out, and a missing one is shown as `-`."""
    if not isinstance(doc, Mapping):
        return None
    for name in names:
        value = doc.get(name)
        if value is not None:
            return value
    return None


def moment(value: Any) -> datetime | None:
    """An ISO 8601 timestamp (or Unix seconds) of an answer, or None."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def seconds(value: float | None) -> str:
    """A duration for people: 0.25s, 12.3s, 4m05s, 2h03m."""
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f}s"
    if value < 60:
        return f"{value:.1f}s"
    if value < 3600:
        return f"{int(value // 60)}m{int(value % 60):02d}s"
    return f"{int(value // 3600)}h{int(value % 3600 // 60):02d}m"


def started_of(doc: Mapping[str, Any]) -> datetime | None:
    return moment(field(doc, "started", "started_at", "created", "created_at"))


def duration_of(doc: Mapping[str, Any]) -> float | None:
    """Seconds from start to finish; up to now while it still runs."""
    start = started_of(doc)
    if start is None:
        return None
    end = moment(field(doc, "finished", "finished_at", "ended", "ended_at"))
    if end is None:
        if field(doc, "state") in JOB_DONE:
            return None  # ended, but the answer does not say when
        end = datetime.now(UTC)
    return max(0.0, (end - start).total_seconds())


def counts_of(doc: Mapping[str, Any]) -> dict[str, int]:
    """A job's datum counts by state (`datums` or `counts`), zeros filled in."""
    raw = field(doc, "datums", "counts", "datum_counts")
    raw = raw if isinstance(raw, Mapping) else {}
    counts = {k: int(v) for k, v in raw.items() if isinstance(v, int)}
    for state in (*DATUM_STATES, UNCHANGED, "total"):
        counts.setdefault(state, 0)
    if not counts["total"]:
        counts["total"] = sum(counts[s] for s in (*DATUM_STATES, UNCHANGED))
    return counts


def datum_summary(doc: Mapping[str, Any]) -> str:
    """processed/skipped/failed/total: processed counts the datums that ran to
    an end (success, or recovered by err_cmd); skipped, those whose earlier
    outputs were reused (skipped or unchanged)."""
    c = counts_of(doc)
    return f"{c['success'] + c['recovered']}/{skipped(c)}/{c['failed']}/{c['total']}"


def skipped(counts: Mapping[str, int]) -> int:
    return counts["skipped"] + counts[UNCHANGED]


def label(pipeline: Any, version: Any) -> str:
    if not pipeline:
        return "-"
    return f"{pipeline}@v{version}" if version is not None else str(pipeline)


def commit_ref(doc: Mapping[str, Any]) -> str:
    """`repo@branch commit12` of an input (either part may be missing)."""
    repo = field(doc, "repo") or "?"
    branch = field(doc, "branch")
    where = f"{repo}@{branch}" if branch else str(repo)
    return f"{where} {short(field(doc, 'commit'))}"


def is_tty() -> bool:
    return sys.stderr.isatty()


def progress(line: str) -> None:
    """Redraw the one-line progress display on stderr (only on a terminal)."""
    sys.stderr.write("\r\x1b[K" + line)
    sys.stderr.flush()


def end_progress() -> None:
    sys.stderr.write("\r\x1b[K")
    sys.stderr.flush()


@contextlib.contextmanager
def api_client() -> Iterator[Client]:
    """`client()`, plus exit codes for errors common.py does not name yet
    (job_not_found, datum_not_found, ...): by their HTTP status, and Ctrl-C
    as 130 without a stack trace."""
    with client() as api:
        try:
            yield api
        except LoxoError as exc:
            code = exit_code_for(exc.code, exc.status)
            if code == EXIT_ERROR and (exc.status == 404 or exc.code.endswith("_not_found")):
                code = EXIT_NOT_FOUND
            elif code == EXIT_ERROR and exc.status == 409:
                code = EXIT_CONFLICT
            elif code == EXIT_ERROR and exc.status == 400:
                code = EXIT_USAGE
            fail(f"{exc.message or exc.code} [{exc.code}]", code)
        except KeyboardInterrupt:
            if is_tty():
                end_progress()
            raise typer.Exit(EXIT_INTERRUPTED) from None


def fields_table(rows: Sequence[tuple[str, Any]]) -> None:
    """`label: value` lines, aligned."""
    width = max(len(name) for name, _ in rows) + 2
    for name, value in rows:
        out.print(f"{name + ':':{width}} {'-' if value in (None, '') else value}", markup=False)


# ---------------------------------------------------------------------------- jobs


def _state_option(states: Sequence[str]) -> Any:
    return typer.Option(None, "--state", "-s", help="Only in this state: " + ", ".join(states))


def _check_state(state: str | None, states: Sequence[str]) -> None:
    if state is not None and state not in states:
        fail(f"--state {state!r}: expected one of {', '.join(states)}", EXIT_USAGE)


@job_app.command(
    "list",
    epilog="Examples: loxo job list  |  loxo job list --pipeline edges --state failure  |  "
    "loxo job list -o json",
)
def list_jobs(
    pipeline: str | None = typer.Option(None, "--pipeline", "-p", help="Only this pipeline's."),
    state: str | None = _state_option(JOB_STATES),
    output: Output = OUTPUT,
) -> None:
    """Jobs, newest first. DATUMS is processed/skipped/failed/total."""
    _check_state(state, JOB_STATES)
    with api_client() as api:
        jobs = list(api.list_jobs(pipeline, state))
    if output is Output.json:
        print_json(jobs)
        return
    table(
        ["ID", "PIPELINE", "STATE", "STARTED", "DURATION", "DATUMS", "OUTPUT"],
        [
            (
                short(field(j, "id", "job")),
                label(field(j, "pipeline"), field(j, "version")),
                field(j, "state") or "-",
                when(started_of(j)),
                seconds(duration_of(j)),
                datum_summary(j),
                short(field(j, "output_commit", "output")),
            )
            for j in jobs
        ],
    )


# The server's timing names, as people read them: `wait` is the time a datum
# sat queued until a worker leased it.
_PHASES = {"wait": "scheduling"}
_ORDER = ("planning", "scheduling", "download", "process", "upload")
RUN_PHASES = ("download", "process", "upload")


def time_split(doc: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(phase, seconds) of a job's or datum's timings: planning (a job's),
    scheduling (queued until leased), then the worker's download, process and
    upload, then anything else the server adds."""
    raw = field(doc, "timings", "time", "times")
    raw = raw if isinstance(raw, Mapping) else {}
    split = {
        _PHASES.get(str(k), str(k)): float(v) for k, v in raw.items() if isinstance(v, int | float)
    }
    planning = field(field(doc, "plan"), "plan_seconds")
    if isinstance(planning, int | float):
        split["planning"] = float(planning)
    return sorted(
        split.items(), key=lambda kv: _ORDER.index(kv[0]) if kv[0] in _ORDER else len(_ORDER)
    )


def run_seconds(doc: Mapping[str, Any]) -> float | None:
    """A datum's time on a worker: download + process + upload."""
    split = dict(time_split(doc))
    ran = [split[k] for k in RUN_PHASES if k in split]
    return sum(ran) if ran else duration_of(doc)


def _print_time_split(doc: Mapping[str, Any]) -> None:
    split = time_split(doc)
    if not split:
        out.print("time: -", markup=False)
        return
    total = sum(v for _, v in split) or 1.0
    out.print("where the time goes (per phase, summed over datums):", markup=False)
    for phase, value in split:
        out.print(f"  {phase + ':':12} {seconds(value):>8}  {100 * value / total:5.1f}%")


def _plan_text(plan: Any) -> str | None:
    """`full: 3 run, 0 reused, 0 removed (3 keys listed)`, of a job's plan."""
    if not isinstance(plan, Mapping) or not plan.get("plan"):
        return None
    text = f"{plan['plan']}: " + ", ".join(
        f"{plan.get(k) or 0} {k}" for k in ("run", "reused", "removed")
    )
    listed = plan.get("listed_keys")
    return text + (f" ({listed} keys listed)" if listed is not None else "")


@job_app.command(
    "inspect",
    epilog="Examples: loxo job inspect 3f2a9c0d1e2b4f5a  |  loxo job inspect JOB -o json",
)
def inspect_job(job: str = _JOB, output: Output = OUTPUT) -> None:
    """A job's state, inputs, output, datum counts and where the time goes.

    Shows the state and its reason, the inputs (repo@branch commit), the
    output commit and commit set, datum counts by state, and the time split
    summed over datums (download, process, upload, scheduling)."""
    with api_client() as api:
        j = api.inspect_job(job)
    if output is Output.json:
        print_json(j)
        return
    c = counts_of(j)
    fields_table(
        [
            ("job", field(j, "id", "job")),
            ("pipeline", label(field(j, "pipeline"), field(j, "version"))),
            ("state", field(j, "state")),
            ("reason", field(j, "reason", "error")),
            ("started", when(started_of(j))),
            ("finished", when(moment(field(j, "finished", "finished_at")))),
            ("duration", seconds(duration_of(j))),
            ("output commit", field(j, "output_commit", "output")),
            ("commit set", field(j, "commit_set")),
            (
                "datums",
                f"{c['total']} total: {c['success']} success, {c['skipped']} skipped, "
                f"{c[UNCHANGED]} unchanged, {c['failed']} failed, {c['recovered']} recovered, "
                f"{c['pending']} pending, {c['running']} running"
                + (f", {c['killed']} killed" if c["killed"] else ""),
            ),
            ("plan", _plan_text(field(j, "plan"))),
        ]
    )
    inputs = field(j, "inputs")
    out.print("inputs:", markup=False)
    for item in inputs if isinstance(inputs, list) else []:
        name = field(item, "name")
        prefix = f"{name}: " if name and name != field(item, "repo") else ""
        out.print(f"  {prefix}{commit_ref(item)}", markup=False)
    _print_time_split(j)


@job_app.command(
    "wait",
    epilog="Examples: loxo job wait 3f2a9c0d1e2b4f5a  |  loxo job wait JOB --timeout 600 "
    "&& echo done",
)
def wait_job(job: str = _JOB, timeout: float = _TIMEOUT, output: Output = OUTPUT) -> None:
    """Wait until a job ends; exit 0 only if it succeeded.

    Exits 1 with the reason when the job failed or was killed, or when
    --timeout passed first. A progress line goes to stderr on a terminal."""
    deadline = time.monotonic() + timeout if timeout else None
    tty = is_tty()
    with api_client() as api:
        while True:
            j = api.inspect_job(job)
            state = field(j, "state")
            if state in JOB_DONE:
                break
            if deadline is not None and time.monotonic() >= deadline:
                if tty:
                    end_progress()
                fail(f"job {job}: still {state} after {seconds(timeout)} (--timeout)", EXIT_ERROR)
            if tty:
                c = counts_of(j)
                progress(
                    f"job {short(job)} {state}: {c['success'] + c['recovered']} done, "
                    f"{skipped(c)} skipped, {c['failed']} failed of {c['total']} datums"
                )
            time.sleep(POLL_SECONDS)
    if tty:
        end_progress()
    if output is Output.json:
        print_json(j)
    else:
        out.print(
            f"job {field(j, 'id', 'job') or job}: {state} ({datum_summary(j)} datums "
            f"processed/skipped/failed/total, {seconds(duration_of(j))})",
            markup=False,
        )
    if state != "success":
        reason = field(j, "reason", "error")
        fail(f"job {job} {state}" + (f": {reason}" if reason else ""), EXIT_ERROR)


@job_app.command("stop", epilog="Example: loxo job stop 3f2a9c0d1e2b4f5a")
def stop_job(job: str = _JOB, output: Output = OUTPUT) -> None:
    """Stop a job: its datums are killed, and it commits no output.

    Its successful datums stay reusable by the next job."""
    with api_client() as api:
        j = api.stop_job(job)
    if output is Output.json:
        print_json(j)
        return
    out.print(f"job {field(j, 'id', 'job') or job}: {field(j, 'state') or 'stopped'}", markup=False)


# -------------------------------------------------------------------------- datums


@datum_app.command(
    "list",
    epilog="Examples: loxo datum list JOB  |  loxo datum list JOB --state failed  |  "
    "loxo datum list JOB -o json",
)
def list_datums(
    job: str = _JOB,
    state: str | None = _state_option(DATUM_STATES),
    output: Output = OUTPUT,
) -> None:
    """A job's datums: state, tries, duration, and its inputs' paths."""
    _check_state(state, DATUM_STATES)
    with api_client() as api:
        datums = list(api.list_datums(job, state))
    if output is Output.json:
        print_json(datums)
        return
    table(
        ["ID", "STATE", "TRIES", "TIME", "INPUTS"],
        [
            (
                short(field(d, "id", "datum")),
                field(d, "state") or "-",
                field(d, "tries", "try") or 0,
                seconds(run_seconds(d)),
                _paths(d),
            )
            for d in datums
        ],
    )


def _paths(datum: Mapping[str, Any]) -> str:
    inputs = field(datum, "inputs")
    if not isinstance(inputs, list):
        return "-"
    return ", ".join(
        f"{field(i, 'name') or field(i, 'repo')}:{field(i, 'path') or '/'}" for i in inputs
    )


def _files(item: Mapping[str, Any]) -> str:
    """` (N files)` of an input or output: `files` is a count or a list."""
    files = field(item, "files", "objects")
    count = len(files) if isinstance(files, list) else files
    return f" ({count} file{'' if count == 1 else 's'})" if isinstance(count, int) else ""


def _outputs(api: Client, datum: Mapping[str, Any]) -> str | None:
    """`repo@commit12 (N files, size)`: the datum's own output commit (it
    holds exactly what the datum wrote), counted by the commit's details."""
    commit, repo = field(datum, "output_commit"), field(datum, "pipeline")
    if not commit or not repo:
        return None
    text = f"{repo}@{short(commit)}"
    try:
        c = api.inspect(repo, commit)
    except LoxoError:
        return text  # the commit went away (a newer attempt's, or collected)
    size = f", {human(c.size)}" if c.size is not None else ""
    return f"{text} ({c.objects} file{'' if c.objects == 1 else 's'}{size})"


@datum_app.command(
    "inspect",
    epilog="Examples: loxo datum inspect JOB DATUM  |  loxo datum inspect JOB DATUM -o json",
)
def inspect_datum(job: str = _JOB, datum: str = _DATUM, output: Output = OUTPUT) -> None:
    """A datum's inputs, outputs, tries, state, timings and last error.

    Inputs show as `name repo@commit:path (N files)`."""
    with api_client() as api:
        d = api.inspect_datum(job, datum)
        outputs = None if output is Output.json else _outputs(api, d)
    if output is Output.json:
        print_json(d)
        return
    fields_table(
        [
            ("datum", field(d, "id", "datum")),
            ("job", field(d, "job") or job),
            ("state", field(d, "state")),
            ("reason", field(d, "reason")),
            ("tries", field(d, "tries", "try")),
            ("exit code", field(d, "exit_code")),
            ("worker", field(d, "worker")),
        ]
    )
    out.print("inputs:", markup=False)
    for item in field(d, "inputs") or []:
        repo = field(item, "repo") or "?"
        where = f"{repo}@{short(field(item, 'commit'))}:{field(item, 'path') or '/'}"
        out.print(f"  {field(item, 'name') or repo}  {where}{_files(item)}", markup=False)
    out.print(f"outputs: {outputs or '-'}", markup=False)
    split = time_split(d)
    out.print(
        "timings: " + (", ".join(f"{k} {seconds(v)}" for k, v in split) if split else "-"),
        markup=False,
    )
    error = field(d, "error", "last_error")
    if error:
        out.print("last error:", markup=False)
        text = error if isinstance(error, str) else json.dumps(error, indent=2)
        for line in text.rstrip("\n").splitlines():
            out.print(f"  {line}", markup=False)


@datum_app.command("restart", epilog="Example: loxo datum restart JOB DATUM")
def restart_datum(job: str = _JOB, datum: str = _DATUM, output: Output = OUTPUT) -> None:
    """Run a failed datum again, with fresh tries.

    Its failed job is reopened, and commits when the datum succeeds."""
    with api_client() as api:
        d = api.restart_datum(job, datum)
    if output is Output.json:
        print_json(d)
        return
    out.print(
        f"datum {field(d, 'id', 'datum') or datum} of job {field(d, 'job') or job}: "
        f"{field(d, 'state') or 'restarted'}",
        markup=False,
    )


# ---------------------------------------------------------------------------- logs


def log_prefix(record: Mapping[str, Any]) -> str:
    """[job8 datum8 try N stream]: enough to tell records apart on a screen."""
    parts = [
        str(field(record, "job") or "-")[:8],
        str(field(record, "datum") or "-")[:8],
        f"try {field(record, 'try') or '-'}",
        str(field(record, "stream") or "-"),
    ]
    return "[" + " ".join(parts) + "]"


def print_record(record: Mapping[str, Any], output: Output) -> None:
    if output is Output.json:
        sys.stdout.write(json.dumps(record) + "\n")
    else:
        prefix = log_prefix(record)
        text = str(field(record, "text") or "")
        for line in text.rstrip("\n").split("\n"):
            sys.stdout.write(f"{prefix} {line}\n")
    sys.stdout.flush()


def logs(
    pipeline: str | None = typer.Option(None, "--pipeline", "-p", help="Only this pipeline's."),
    job: str | None = typer.Option(None, "--job", "-j", help="Only this job's."),
    datum: str | None = typer.Option(None, "--datum", "-d", help="Only this datum's."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new records (every 0.5 s) until Ctrl-C."
    ),
    output: Output = OUTPUT,
) -> None:
    """What user code printed (stdout, stderr), oldest first.

    Each line is prefixed [job8 datum8 try N stream]; -o json prints each
    record as one JSON line. -f keeps polling until Ctrl-C."""
    cursor: str | None = None
    with api_client() as api:
        while True:
            page = api.logs(pipeline, job, datum, cursor)
            items = page.get("items") or []
            for record in items:
                print_record(record, output)
            # The cursor stays put when a page names none, so -f re-asks from
            # the same place rather than from the start.
            cursor = page.get("next_cursor") or cursor
            if items and page.get("next_cursor"):
                continue
            if not follow:
                return
            time.sleep(POLL_SECONDS)


TOP_LEVEL: list[tuple[Callable[..., None], str]] = [
    (
        logs,
        "Examples: loxo logs --pipeline edges  |  loxo logs --job JOB --datum DATUM  |  "
        "loxo logs -p edges -f  |  loxo logs --job JOB -o json",
    ),
]
