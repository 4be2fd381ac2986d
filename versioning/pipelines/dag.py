"""The DAG of pipelines: each pipeline writes the repo of its own name and
reads the repos of its pfs inputs, which are plain repos or other pipelines'
outputs. `check_dag` refuses a dangling input, an output that would take an
existing repo's name, and a cycle; it returns an order to run them in."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from versioning.pipelines.spec import Pfs, PipelineSpec, SpecError, iter_leaves


def _inputs(spec: PipelineSpec) -> list[tuple[str, str]]:
    """(field path of the repo, repo) of every pfs input, in spec order."""
    return [
        (f"{path}.repo", leaf.repo)
        for path, leaf in iter_leaves(spec.input)
        if isinstance(leaf, Pfs)
    ]


def check_dag(specs: Mapping[str, PipelineSpec], repos: Collection[str]) -> list[str]:
    """The pipelines in topological order (each after the pipelines it reads;
    ties by name), given the existing repos that are not pipeline outputs.

    Raises SpecError (with `pipeline` set) for an input repo that is neither
    in `repos` nor a pipeline of `specs`, a pipeline named like an existing
    repo (its output repo would collide), and a cycle (the message names it:
    `a -> b -> a`).
    """
    existing = set(repos)
    for name in sorted(specs):
        if name in existing:
            raise SpecError(
                "pipeline.name",
                f"pipeline {name!r} would write its output to repo {name!r}, which already "
                "exists and is not a pipeline's output",
                pipeline=name,
            )
    reads: dict[str, list[str]] = {}
    fields: dict[tuple[str, str], str] = {}  # (reader, upstream pipeline) -> field
    for name in sorted(specs):
        upstream: list[str] = []
        for field, repo in _inputs(specs[name]):
            if repo in specs:
                if repo not in upstream:
                    upstream.append(repo)
                    fields[name, repo] = field
            elif repo not in existing:
                raise SpecError(
                    field,
                    f"repo {repo!r} does not exist and is no pipeline's output",
                    pipeline=name,
                )
        reads[name] = upstream
    _refuse_cycles(reads, fields)
    # Kahn's algorithm, always taking the smallest ready name: a stable order.
    waiting = {name: len(up) for name, up in reads.items()}
    readers: dict[str, list[str]] = {name: [] for name in reads}
    for name, up in reads.items():
        for repo in up:
            readers[repo].append(name)
    ready = sorted(name for name, n in waiting.items() if n == 0)
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for reader in readers[name]:
            waiting[reader] -= 1
            if waiting[reader] == 0:
                ready.append(reader)
                ready.sort()
    return order


def _refuse_cycles(reads: Mapping[str, list[str]], fields: Mapping[tuple[str, str], str]) -> None:
    """A depth-first walk; the first cycle met is named in full."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in done:
            return
        if name in path:
            cycle = [*path[path.index(name) :], name]
            raise SpecError(
                fields[cycle[0], cycle[1]],
                f"pipelines form a cycle: {' -> '.join(cycle)} (each reads the next one's output)",
                pipeline=cycle[0],
            )
        path.append(name)
        for upstream in reads[name]:
            visit(upstream, path)
        path.pop()
        done.add(name)

    for name in sorted(reads):
        visit(name, [])
