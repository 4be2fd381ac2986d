"""`loxo pipeline`: Pachyderm-style pipelines. `validate` checks spec files
offline (each spec's fields, then the DAG among them); create, update, list,
inspect, stop, start and delete manage pipelines on the server (their jobs:
jobs.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from gateway.client import LoxoError
from gateway.commands.common import (
    EXIT_USAGE,
    OUTPUT,
    Output,
    client,
    err,
    exit_code_for,
    fail,
    out,
    print_json,
    table,
    when,
)

if TYPE_CHECKING:
    from gateway.client.models import Pipeline
    from versioning.pipelines.spec import PipelineSpec

pipeline_app = typer.Typer(
    help="Pipelines: validate specs, create and manage pipelines, preview their next job "
    "(their jobs: loxo job; their DAG: loxo dag).",
    no_args_is_help=True,
)

_FILES = typer.Option(
    ...,
    "--file",
    "-f",
    help="A pipeline spec, JSON or YAML (Pachyderm's format). Repeatable: the specs are "
    "checked together, as one DAG.",
)
_REPOS = typer.Option(
    None,
    "--repos",
    help="Comma-separated repos that exist (besides the pipelines' outputs). Without it, "
    "every input repo no given spec produces is assumed to exist.",
)


@pipeline_app.command(
    "validate",
    epilog="Examples: loxo pipeline validate -f edges.yaml -f montage.yaml  |  "
    "loxo pipeline validate -f edges.yaml --repos images  |  "
    "loxo pipeline validate -f edges.yaml -o json",
)
def validate(
    files: list[Path] = _FILES,
    repos: str | None = _REPOS,
    output: Output = OUTPUT,
) -> None:
    """Check pipeline specs offline: unknown fields, types, names, globs, input
    rules, then the DAG among them (missing input repos, output repos that
    would take an existing repo's name, cycles). Prints the order to run them
    in, or `FILE: field: message` and exits 2."""
    from versioning.pipelines.dag import check_dag
    from versioning.pipelines.spec import (
        Pfs,
        SpecError,
        iter_leaves,
        to_json,
    )

    specs: dict[str, PipelineSpec] = {}
    file_of: dict[str, Path] = {}
    for path in files:
        spec = load_spec(path)
        if spec.name in specs:
            fail(
                f"{path}: pipeline.name: pipeline {spec.name!r} is also defined in "
                f"{file_of[spec.name]}",
                EXIT_USAGE,
            )
        specs[spec.name] = spec
        file_of[spec.name] = path
    if repos is not None:
        existing = [r.strip() for r in repos.split(",") if r.strip()]
    else:
        # Offline: whatever the specs read and do not produce is taken to exist.
        existing = sorted(
            {
                leaf.repo
                for spec in specs.values()
                for _, leaf in iter_leaves(spec.input)
                if isinstance(leaf, Pfs) and leaf.repo not in specs
            }
        )
        if existing:
            err.print(
                "note: assumed to exist (no --repos given): " + ", ".join(existing),
                markup=False,
            )
    try:
        order = check_dag(specs, existing)
    except SpecError as exc:
        where = file_of.get(exc.pipeline)
        fail(f"{where}: {exc}" if where else str(exc), EXIT_USAGE)
    if output is Output.json:
        sys.stdout.write(json.dumps([to_json(specs[name]) for name in order], indent=2) + "\n")
        return
    noun = "pipeline" if len(order) == 1 else "pipelines"
    out.print(f"ok: {len(order)} {noun} (order: {', '.join(order)})", markup=False)


# ---------------------------------------------------------------------------- lifecycle

_SPEC_FILE = typer.Option(
    ..., "--file", "-f", help="The pipeline spec, JSON or YAML (Pachyderm's format)."
)


def load_spec(path: Path) -> PipelineSpec:
    """A spec file, parsed and checked offline (exit 2 with `FILE: field:
    message`, or when it cannot be read)."""
    from versioning.pipelines.spec import SpecError, parse_spec

    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: cannot read: {exc}", EXIT_USAGE)
    try:
        return parse_spec(text, source=str(path))
    except SpecError as exc:
        fail(str(exc), EXIT_USAGE)


def _read_spec(path: Path) -> dict[str, Any]:
    """The spec file's canonical JSON, checked offline first."""
    from versioning.pipelines.spec import to_json

    return to_json(load_spec(path))


def _spec_refused(exc: LoxoError, path: Path) -> None:
    """The server's refusal of a spec (its DAG: a missing input repo, a
    cycle) as `FILE: field: message`; other errors go on."""
    if exc.code == "invalid_spec":
        fail(f"{path}: {exc.message} [{exc.code}]", exit_code_for(exc.code, exc.status))


def _show(p: Pipeline, output: Output, did: str) -> None:
    if output is Output.json:
        print_json(p)
        return
    out.print(f"{did} pipeline {p.name} (version {p.version}, {p.state})", markup=False)


@pipeline_app.command(
    "create",
    epilog="Examples: loxo pipeline create -f edges.yaml  |  "
    "loxo pipeline create -f edges.json -o json",
)
def create(path: Path = _SPEC_FILE, output: Output = OUTPUT) -> None:
    """Create a pipeline from a spec, and its output repo (the pipeline's name).
    Its input repos must exist (or be other pipelines' outputs)."""
    spec = _read_spec(path)
    with client() as api:
        try:
            created = api.create_pipeline(spec)
        except LoxoError as exc:
            _spec_refused(exc, path)
            raise
    _show(created, output, "created")


@pipeline_app.command(
    "update",
    epilog="Examples: loxo pipeline update -f edges.yaml  |  loxo pipeline update -f edges.yaml "
    "--reprocess",
)
def update(
    path: Path = _SPEC_FILE,
    reprocess: bool = typer.Option(
        False, "--reprocess", help="A new salt: the next job reprocesses every datum."
    ),
    output: Output = OUTPUT,
) -> None:
    """Store a new version of a pipeline's spec (the pipeline named in the spec)."""
    spec = _read_spec(path)
    with client() as api:
        try:
            updated = api.update_pipeline(spec["pipeline"]["name"], spec, reprocess)
        except LoxoError as exc:
            _spec_refused(exc, path)
            raise
    _show(updated, output, "updated")


@pipeline_app.command("list", epilog="Examples: loxo pipeline list  |  loxo pipeline list -o json")
def list_(output: Output = OUTPUT) -> None:
    """List pipelines: state, version, input repos and their newest job's state."""
    with client() as api:
        found = list(api.list_pipelines())
    if output is Output.json:
        print_json(found)
        return
    table(
        ["NAME", "STATE", "VERSION", "INPUT REPOS", "LAST JOB", "UPDATED"],
        [
            (
                p.name,
                p.state,
                p.version,
                ", ".join(p.input_repos),
                f"{p.last_job['id'][:12]} {p.last_job['state']}" if p.last_job else "-",
                when(p.updated),
            )
            for p in found
        ],
    )


@pipeline_app.command(
    "inspect",
    epilog="Examples: loxo pipeline inspect edges  |  loxo pipeline inspect edges -o json",
)
def inspect(name: str, output: Output = OUTPUT) -> None:
    """A pipeline's state, version, salt, input and output repos and current spec."""
    with client() as api:
        p = api.inspect_pipeline(name)
    if output is Output.json:
        print_json(p)
        return
    for label, value in (
        ("name", p.name),
        ("state", p.state),
        ("version", str(p.version)),
        ("salt", p.salt),
        ("input repos", ", ".join(p.input_repos)),
        ("output repo", p.output_repo),
        ("created", when(p.created)),
        ("updated", when(p.updated)),
    ):
        out.print(f"{label + ':':13} {value}", markup=False)
    out.print("spec:", markup=False)
    out.print(json.dumps(p.spec, indent=2), markup=False)


@pipeline_app.command("stop", epilog="Example: loxo pipeline stop edges")
def stop(name: str, output: Output = OUTPUT) -> None:
    """Stop a pipeline: no new jobs until `loxo pipeline start`."""
    with client() as api:
        p = api.stop_pipeline(name)
    _show(p, output, "stopped")


@pipeline_app.command("start", epilog="Example: loxo pipeline start edges")
def start(name: str, output: Output = OUTPUT) -> None:
    """Start a stopped pipeline."""
    with client() as api:
        p = api.start_pipeline(name)
    _show(p, output, "started")


@pipeline_app.command(
    "delete",
    epilog="Examples: loxo pipeline delete edges --yes  |  loxo pipeline delete edges "
    "--keep-repo --yes",
)
def delete(
    name: str,
    keep_repo: bool = typer.Option(
        False, "--keep-repo", help="Keep the output repo (default: to the trash)."
    ),
    yes: bool = typer.Option(False, "--yes", help="Confirm."),
    output: Output = OUTPUT,
) -> None:
    """Delete a pipeline and its spec versions; its output repo goes to the
    trash (`loxo repo restore NAME` puts it back) unless --keep-repo."""
    if not yes:
        fail(
            f"deleting pipeline {name} deletes its spec versions"
            + ("" if keep_repo else " and moves its output repo to the trash")
            + "; add --yes",
            EXIT_USAGE,
        )
    with client() as api:
        api.delete_pipeline(name, keep_repo=keep_repo, confirm=True)
    if output is Output.json:
        sys.stdout.write(json.dumps({"deleted": name, "kept_repo": keep_repo}) + "\n")
        return
    kept = "kept its output repo" if keep_repo else f"its output repo {name} is in the trash"
    out.print(f"deleted pipeline {name} ({kept})", markup=False)
