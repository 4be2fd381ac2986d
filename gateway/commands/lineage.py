"""`loxo wait`, `loxo dag`, `loxo provenance` and `loxo subvenance`: how data
flows through pipelines. Waiting for everything downstream of a commit, the
DAG of repos and pipelines, and which files made (or were made from) a file.
Answer shapes: docs/design/jobs.md; read tolerantly with `jobs.field`."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import typer

from gateway.client import Client
from gateway.commands.common import (
    EXIT_ERROR,
    EXIT_USAGE,
    OUTPUT,
    Output,
    Target,
    fail,
    out,
    print_json,
    short,
    table,
    target,
)
from gateway.commands.jobs import (
    JOB_DONE,
    POLL_SECONDS,
    api_client,
    counts_of,
    end_progress,
    field,
    is_tty,
    label,
    progress,
    seconds,
    skipped,
)

BAR_WIDTH = 24
# Provenance and subvenance trees deeper than this are cut (with a note):
# the server's answer is finite, this only keeps a runaway answer readable.
MAX_DEPTH = 64


# ---------------------------------------------------------------------------- wait


def _resolve(api: Client, t: Target) -> str:
    """The commit id of REPO@REF: a branch's head, a tag's commit, or a
    commit id (or unique prefix) made whole."""
    return api.inspect(t.repo, t.ref).id


def _jobs_of(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    jobs = field(status, "jobs")
    return [j for j in jobs if isinstance(j, Mapping)] if isinstance(jobs, list) else []


def _bar(status: Mapping[str, Any]) -> str:
    """One line: a bar of the datums that ended, across the jobs, and what
    has no job yet."""
    done = skipped_ = failed = running = total = 0
    for j in _jobs_of(status):
        c = counts_of(j)
        done += c["success"] + c["recovered"]
        skipped_ += skipped(c)
        failed += c["failed"]
        running += c["running"]
        total += c["total"]
    ended = done + skipped_ + failed
    filled = BAR_WIDTH * ended // total if total else 0
    line = (
        f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {ended}/{total} datums "
        f"({done} done, {skipped_} skipped, {failed} failed, {running} running) "
        f"in {len(_jobs_of(status))} jobs"
    )
    waiting = field(status, "waiting_for") or []
    if waiting:
        line += "; no job yet: " + ", ".join(map(str, waiting))
    return line


def _summary(status: Mapping[str, Any]) -> None:
    table(
        ["PIPELINE", "JOB", "STATE", "DATUMS"],
        [
            (
                field(j, "pipeline") or "-",
                short(field(j, "job", "id")),
                field(j, "state") or "-",
                _counts_text(j),
            )
            for j in _jobs_of(status)
        ],
    )


def _counts_text(job: Mapping[str, Any]) -> str:
    c = counts_of(job)
    text = f"{c['success'] + c['recovered']} done, {skipped(c)} skipped, {c['failed']} failed"
    return f"{text} of {c['total']}"


def wait(
    ref: str = typer.Argument(..., metavar="REPO@COMMIT", help="A commit, or a branch's head."),
    timeout: float = typer.Option(
        0.0, "--timeout", min=0.0, help="Give up after this many seconds (0: wait forever)."
    ),
    output: Output = OUTPUT,
) -> None:
    """Wait for every job downstream of a commit; exit 0 if all succeeded.

    Prints the jobs at the end. Exits 1 when one failed or was killed, or
    when --timeout passed first. A progress bar (datums ended of all, across
    the jobs) goes to stderr on a terminal."""
    t = target(ref, need_ref=True, allow_path=False)
    deadline = time.monotonic() + timeout if timeout else None
    tty = is_tty()
    timed_out = False
    with api_client() as api:
        commit = _resolve(api, t)
        while True:
            status = api.wait_status(t.repo, commit)
            if field(status, "done"):
                break
            if deadline is not None and time.monotonic() >= deadline:
                timed_out = True
                break
            if tty:
                progress(_bar(status))
            time.sleep(POLL_SECONDS)
    if tty:
        end_progress()
    if output is Output.json:
        print_json(status)
    elif _jobs_of(status):
        _summary(status)
    else:
        out.print(f"nothing downstream of {t.repo}@{short(commit)}", markup=False)
    if timed_out:
        fail(f"{t.repo}@{short(commit)}: not done after {seconds(timeout)} (--timeout)")
    bad = [j for j in _jobs_of(status) if field(j, "state") in JOB_DONE[1:]]
    if bad:
        names = ", ".join(f"{field(j, 'pipeline')} ({field(j, 'state')})" for j in bad)
        fail(f"{len(bad)} downstream job(s) did not succeed: {names}", EXIT_ERROR)


# ----------------------------------------------------------------------------- dag


def _pipelines(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = field(doc, "pipelines")
    return [p for p in items if isinstance(p, Mapping)] if isinstance(items, list) else []


def _output_repo(p: Mapping[str, Any]) -> str:
    """The repo a pipeline writes: `output_branch` is `repo@branch`."""
    branch = str(field(p, "output_branch") or "").partition("@")[0]
    return str(field(p, "output_repo") or branch or field(p, "name"))


def _inputs(p: Mapping[str, Any]) -> list[str]:
    items = field(p, "inputs", "input_repos") or []
    return [str(i if isinstance(i, str) else field(i, "repo")) for i in items]


def dag_order(pipelines: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Pipelines upstream first (a pipeline after those whose output it
    reads), by name among equals; any cycle's members last, by name."""
    by_output = {_output_repo(p): str(field(p, "name")) for p in pipelines}
    by_name = {str(field(p, "name")): p for p in pipelines}
    needs = {
        name: {by_output[r] for r in _inputs(p) if r in by_output and by_output[r] != name}
        for name, p in by_name.items()
    }
    order: list[Mapping[str, Any]] = []
    done: set[str] = set()
    while len(done) < len(by_name):
        ready = sorted(n for n in by_name if n not in done and needs[n] <= done)
        if not ready:
            ready = sorted(n for n in by_name if n not in done)
        for name in ready:
            order.append(by_name[name])
            done.add(name)
    return order


def dag_lines(doc: Mapping[str, Any]) -> list[str]:
    """The DAG as text: the source repos, then one line per pipeline,
    `input, input -> [pipeline] -> output repo   state vN, last job ID state`."""
    pipelines = dag_order(_pipelines(doc))
    outputs = {_output_repo(p) for p in pipelines}
    sources = sorted({r for p in pipelines for r in _inputs(p)} - outputs)
    lines = ["repos: " + (", ".join(sources) if sources else "-")]
    for p in pipelines:
        last = field(p, "last_job")
        job = (
            f"last job {short(field(last, 'id', 'job'))} {field(last, 'state') or '-'}"
            if isinstance(last, Mapping)
            else "no job yet"
        )
        version = field(p, "version")
        state = str(field(p, "state") or "-") + (f" v{version}" if version is not None else "")
        detail = f"{state}, {job}"
        # repo@branch where the answer names branches, else the repos
        ins = field(p, "input_branches") or _inputs(p)
        edge = f"{', '.join(map(str, ins)) or '(no input)'} -> [{field(p, 'name')}] -> "
        lines.append(f"{edge}{field(p, 'output_branch') or _output_repo(p)}    {detail}")
    return lines


def dag(output: Output = OUTPUT) -> None:
    """The DAG of repos and pipelines, with states and last jobs.

    One line per pipeline, upstream first: `inputs -> [pipeline] -> output
    repo`, its state and version, and its last job's id and state."""
    with api_client() as api:
        doc = api.dag()
    if output is Output.json:
        print_json(doc)
        return
    if not _pipelines(doc):
        out.print("no pipelines", markup=False)
        return
    for line in dag_lines(doc):
        out.print(line, markup=False)


# ------------------------------------------------------------- provenance, subvenance


def _file_text(doc: Mapping[str, Any] | None) -> str:
    repo = field(doc, "repo") or "?"
    return f"{repo}@{short(field(doc, 'commit'))}:{field(doc, 'path') or '/'}"


def _made_by(doc: Mapping[str, Any] | None) -> str:
    """`(pipeline@vN job12 datum12)`, or `(source)` for a file nothing made."""
    if not isinstance(doc, Mapping) or not field(doc, "pipeline"):
        return "(source)"
    made = label(field(doc, "pipeline"), field(doc, "version"))
    return f"({made} job {short(field(doc, 'job'))} datum {short(field(doc, 'datum'))})"


def provenance_lines(doc: Mapping[str, Any], depth: int = 0) -> list[str]:
    """One line per file, indented by level: the file, then the inputs that
    made it, each followed by its own provenance."""
    pad = "  " * depth
    lines = [f"{pad}{_file_text(field(doc, 'file'))}  {_made_by(field(doc, 'producer'))}"]
    inputs = field(doc, "inputs") or []
    if inputs and depth >= MAX_DEPTH:
        return [*lines, f"{pad}  ... (deeper than {MAX_DEPTH} levels, cut)"]
    for item in inputs:
        up = field(item, "provenance")
        if isinstance(up, Mapping):
            # The input's own answer names it as its file: draw it from there.
            lines += provenance_lines({"file": item, **up}, depth + 1)
        else:
            lines.append(f"{pad}  {_file_text(item)}  (source)")
    return lines


def subvenance_lines(doc: Mapping[str, Any], depth: int = 0) -> list[str]:
    """One line per file: the file, then each file derived from it (with the
    pipeline, job and datum that made it), each followed by its own."""
    lines: list[str] = []
    if depth == 0:
        lines.append(_file_text(field(doc, "file")))
    pad = "  " * (depth + 1)
    derived = field(doc, "derived") or []
    if derived and depth >= MAX_DEPTH:
        return [*lines, f"{pad}... (deeper than {MAX_DEPTH} levels, cut)"]
    for item in derived:
        lines.append(f"{pad}{_file_text(item)}  {_made_by(item)}")
        lines += subvenance_lines(item, depth + 1)
    return lines


def _lineage_target(text: str) -> Target:
    t = target(text)
    if not t.path:
        fail(f"{text!r}: name a file, as REPO@REF:PATH", EXIT_USAGE)
    return t


_FILE = typer.Argument(..., metavar="REPO@REF:PATH", help="A file (REF: a branch, tag or commit).")


def provenance(ref: str = _FILE, output: Output = OUTPUT) -> None:
    """Where a file came from, up the DAG to source files.

    A tree: the file with the pipeline, job and datum that made it, then the
    input files (repo@commit:path) they read, each with its own origin."""
    t = _lineage_target(ref)
    with api_client() as api:
        doc = api.provenance(t.repo, t.path, t.ref)
    if output is Output.json:
        print_json(doc)
        return
    for line in provenance_lines(doc):
        out.print(line, markup=False)


def subvenance(ref: str = _FILE, output: Output = OUTPUT) -> None:
    """What was made from a file, down the DAG.

    A tree: every output file derived from it, with the pipeline, job and
    datum that made each, then what was made from those."""
    t = _lineage_target(ref)
    with api_client() as api:
        doc = api.subvenance(t.repo, t.path, t.ref)
    if output is Output.json:
        print_json(doc)
        return
    lines = subvenance_lines(doc)
    for line in lines:
        out.print(line, markup=False)
    if len(lines) == 1:
        sys.stderr.write("nothing derived from it (yet)\n")


TOP_LEVEL: list[tuple[Callable[..., None], str]] = [
    (
        wait,
        "Examples: loxo wait images@main  |  loxo wait images@3f2a9c0d1e2b --timeout 600  |  "
        "loxo put ./x images@main:x && loxo wait images@main",
    ),
    (dag, "Examples: loxo dag  |  loxo dag -o json"),
    (
        provenance,
        "Examples: loxo provenance edges@main:a/x.png  |  loxo provenance "
        "montage@main:montage.png -o json",
    ),
    (
        subvenance,
        "Examples: loxo subvenance images@main:a/x.png  |  loxo subvenance images@v1:a/x.png "
        "-o json",
    ),
]
