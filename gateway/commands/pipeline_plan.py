"""`loxo pipeline plan -f SPEC`: before anything runs, which datums a job of
the spec would run, which it would skip and which outputs it would delete,
each with its reason. The spec is checked here first (as `validate` does),
then planned by the server over the inputs' current branch heads."""

from __future__ import annotations

from pathlib import Path

import typer

from gateway.client.models import PipelinePlan, PlannedDatum, plural
from gateway.commands.common import (
    OUTPUT,
    Output,
    client,
    human,
    out,
    print_json,
    table,
)
from gateway.commands.pipelines import load_spec, pipeline_app

_FILE = typer.Option(
    ..., "--file", "-f", help="A pipeline spec, JSON or YAML (Pachyderm's format)."
)


def _inputs(d: PlannedDatum) -> str:
    if not d.inputs:
        return "-"
    return ", ".join(
        f"{i.name}:{i.path} ({plural(i.files, 'file')}, {human(i.bytes)})" for i in d.inputs
    )


def summary(plan: PipelinePlan) -> str:
    t = plan.totals
    return (
        f"{plural(t['datums'], 'datum')}: {t['run']} to run, {t['skip']} skipped, "
        f"{plural(t['remove'], 'output')} to remove"
    )


@pipeline_app.command(
    "plan",
    epilog="Examples: loxo pipeline plan -f edges.yaml  |  "
    "loxo pipeline plan -f edges.yaml -o json  |  "
    "loxo pipeline plan -f edges.yaml --reprocess",
)
def plan(
    file: Path = _FILE,
    reprocess: bool = typer.Option(
        False, "--reprocess", help="Preview `update --reprocess`: every datum runs."
    ),
    output: Output = OUTPUT,
) -> None:
    """List, before anything runs, the datums a job of the spec would run now,
    those it would skip and the outputs it would delete, each with its reason.
    For an existing pipeline (an update's preview) it compares with the
    pipeline's past datums under its salt, as its next job would; a pipeline
    not created yet has no history: every datum is new. Reads the inputs'
    branch heads; writes nothing. A bad spec exits 2."""
    from versioning.pipelines.spec import to_json

    spec = load_spec(file)
    with client() as api:
        result = api.plan_pipeline(to_json(spec), reprocess=reprocess)
    if output is Output.json:
        print_json(result)
        return
    table(
        ["DECISION", "DATUM", "INPUTS", "REASON"],
        [(d.decision, d.id[:12], _inputs(d), d.reason) for d in result.datums],
    )
    out.print(summary(result), markup=False)
