"""`loxo pipeline plan -f SPEC`: before anything runs, which datums a job of
the spec would run, which it would skip and which outputs it would delete,
each with its reason. The spec is checked here first (as `validate` does),
then planned by the server over the inputs' current branch heads."""

from __future__ import annotations

from pathlib import Path

import typer

from gateway.client.models import PipelinePlan, PlannedDatum, plural
from gateway.commands.common import (
    EXIT_USAGE,
    OUTPUT,
    Output,
    client,
    fail,
    human,
    out,
    print_json,
    table,
)
from gateway.commands.pipelines import pipeline_app

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
    "loxo pipeline plan -f edges.yaml -o json",
)
def plan(file: Path = _FILE, output: Output = OUTPUT) -> None:
    """List, before anything runs, the datums a job of the spec would run now,
    those it would skip and the outputs it would delete, each with its reason
    (a pipeline not created yet has no history: every datum is new). Reads the
    inputs' branch heads; writes nothing. A bad spec exits 2."""
    from versioning.pipelines.spec import SpecError, parse_spec, to_json

    try:
        text = file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{file}: cannot read: {exc}", EXIT_USAGE)
    try:
        spec = parse_spec(text, source=str(file))
    except SpecError as exc:
        fail(str(exc), EXIT_USAGE)
    with client() as api:
        result = api.plan_pipeline(to_json(spec))
    if output is Output.json:
        print_json(result)
        return
    table(
        ["DECISION", "DATUM", "INPUTS", "REASON"],
        [(d.decision, d.id[:12], _inputs(d), d.reason) for d in result.datums],
    )
    out.print(summary(result), markup=False)
