"""Cron inputs, as Pachyderm has them: each cron input of a pipeline is a repo
of its own (`<pipeline>-<input name>`) that the scheduler commits a tick
file to on the schedule: a file named for the tick's time (RFC 3339, UTC)
holding that time. With `overwrite`, the new tick replaces the previous one,
so each job sees only the latest tick; without it, ticks accumulate.

A cron input is then a pfs input over that repo with glob `/*`: each tick is
a datum, and everything else (jobs, skipping, provenance) is unchanged.
`effective_input` makes that rewrite.

Schedules: 5-field cron expressions and descriptors (@daily...) through
croniter; `@every D` (Go durations) here. The first tick is the first
scheduled time after the pipeline's creation.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from croniter import croniter

from versioning.pipelines.spec import (
    Cron,
    Cross,
    Group,
    Input,
    Join,
    Pfs,
    PipelineSpec,
    Union,
    iter_leaves,
    parse_duration,
)

MAX_REPO_NAME = 63


def cron_repo(pipeline: str, cron: Cron) -> str:
    return f"{pipeline}-{cron.name}"


def cron_inputs(spec: PipelineSpec) -> list[tuple[str, Cron]]:
    """(field path, cron input) of each cron input of the spec."""
    return [(path, leaf) for path, leaf in iter_leaves(spec.input) if isinstance(leaf, Cron)]


def effective_input(spec: PipelineSpec) -> Input:
    """The spec's input with each cron input as the pfs input of its repo."""

    def walk(node: Input) -> Input:
        if isinstance(node, Cron):
            return Pfs(repo=cron_repo(spec.name, node), glob="/*", name=node.name)
        if isinstance(node, Pfs):
            return node
        assert isinstance(node, Cross | Union | Join | Group)
        return dataclasses.replace(node, inputs=tuple(walk(c) for c in node.inputs))

    return walk(spec.input)


def effective(spec: PipelineSpec) -> PipelineSpec:
    if not cron_inputs(spec):
        return spec
    return dataclasses.replace(spec, input=effective_input(spec))


def next_tick(schedule: str, after_us: int) -> int:
    """The first scheduled time strictly after `after_us` (microseconds)."""
    text = schedule.strip()
    if text.startswith("@every"):
        step = int(parse_duration(text[len("@every") :].strip()) * 1_000_000)
        return after_us + max(step, 1)
    start = datetime.fromtimestamp(after_us / 1_000_000, UTC)
    following = croniter(text, start).get_next(datetime)
    return int(following.timestamp() * 1_000_000)


def tick_name(at_us: int) -> str:
    moment = datetime.fromtimestamp(at_us / 1_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
