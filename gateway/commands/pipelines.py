"""`loxo pipeline`: Pachyderm-style pipelines. So far only `validate`, which
checks spec files offline: each spec's fields, then the DAG among them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from gateway.commands.common import EXIT_USAGE, OUTPUT, Output, err, fail, out

pipeline_app = typer.Typer(
    help="Pipelines (in progress): only `validate` exists so far.", no_args_is_help=True
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
        PipelineSpec,
        SpecError,
        iter_leaves,
        parse_spec,
        to_json,
    )

    specs: dict[str, PipelineSpec] = {}
    file_of: dict[str, Path] = {}
    for path in files:
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"{path}: cannot read: {exc}", EXIT_USAGE)
        try:
            spec = parse_spec(text, source=str(path))
        except SpecError as exc:
            fail(str(exc), EXIT_USAGE)
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
