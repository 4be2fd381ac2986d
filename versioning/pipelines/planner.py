"""The plan preview of a pipeline spec: which datums a job would run now,
which it would skip, which outputs it would delete, and why.

`plan_spec` resolves each pfs input's branch head, lists only the keys under
its glob's literal prefix (`Glob.prefix`: the tree is iterated from that key
and left as soon as a key leaves the prefix, so a repo's other folders cost
nothing), builds the datums of the whole input tree (`datums.cross`, `union`,
`join`, `group`) and hands them to `datums.plan`. Nothing is written.

`previous` and `salt` come from the pipeline's history once it exists (the
lifecycle stores the salt per pipeline); a spec not created yet has none, so
every datum is "new". Cron inputs are refused for now (a tick is not a
listing). Joins and groups take pfs inputs only, as `datums.join`/`group` do.

Costs: one branch read per pfs input, then the keys under each prefix (an
input read twice is listed twice); the datums' sizes are as in `datums`. The
whole plan is built in memory and returned at once (fine for 10,000s of
datums; a paginated plan is for later).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from versioning import errors
from versioning.model import ObjectEntry
from versioning.pipelines import datums
from versioning.pipelines.datums import Datum, PastDatum, PfsInput, PfsListing
from versioning.pipelines.globs import GlobError, compile_glob
from versioning.pipelines.spec import (
    Cron,
    Cross,
    Group,
    Input,
    Join,
    Pfs,
    PipelineSpec,
    SpecError,
    Union,
)
from versioning.views import View

Decision = Literal["run", "skip", "remove"]


class TreeReader(Protocol):
    """What the planner reads: `Versioning` is one."""

    async def branch_view(self, repo: str, name: str | None) -> View: ...

    def iterate(self, view: View, start: str = "") -> AsyncIterator[tuple[str, ObjectEntry]]: ...


@dataclass(frozen=True, slots=True)
class InputSummary:
    """One input of a datum: the matched path, and how many files (bytes) it covers."""

    name: str
    repo: str
    branch: str
    commit: str  # hex; "" for a branch without commits
    path: str
    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class PlannedItem:
    id: str
    decision: Decision
    reason: str
    inputs: tuple[InputSummary, ...]  # empty for a removed datum (only its id is known)


@dataclass(frozen=True, slots=True)
class SpecPlan:
    pipeline: str
    datums: tuple[PlannedItem, ...]  # to run, then skipped, then removed

    def count(self, decision: Decision) -> int:
        return sum(1 for d in self.datums if d.decision == decision)

    @property
    def totals(self) -> dict[str, int]:
        run, skip, remove = self.count("run"), self.count("skip"), self.count("remove")
        return {"datums": run + skip, "run": run, "skip": skip, "remove": remove}


class PipelinePlanner:
    """The domain service behind `POST /pipelines/plan` (Control.pipeline_planner)."""

    def __init__(self, reader: TreeReader) -> None:
        self.reader = reader

    async def plan(
        self, spec: PipelineSpec, previous: Mapping[str, PastDatum] | None = None, salt: str = ""
    ) -> SpecPlan:
        return await plan_spec(self.reader, spec, previous or {}, salt=salt)


async def plan_spec(
    versioning: TreeReader,
    spec: PipelineSpec,
    previous: Mapping[str, PastDatum] | None = None,
    *,
    salt: str = "",
) -> SpecPlan:
    """The plan of a job of `spec` over its inputs' current branch heads.
    SpecError for what the planner cannot plan (cron, a join of non-pfs
    inputs, a glob the matcher refuses); RepoNotFound / BranchNotFound, with
    the input's field in the message, for a missing input repo or branch."""
    sizes: dict[str, dict[str, int]] = {}
    current = await _datums(versioning, spec.input, "input", sizes)
    result = datums.plan(
        previous or {},
        current,
        salt,
        reprocess_every_job=spec.reprocess_spec.value == "every_job",
    )

    def summary(datum: Datum) -> tuple[InputSummary, ...]:
        return tuple(
            InputSummary(
                d.name,
                d.repo,
                d.branch,
                d.commit,
                d.path,
                len(d.files),
                sum(sizes[d.name][k] for k, _ in d.files),
            )
            for d in datum
        )

    items = [PlannedItem(p.id, "run", p.reason, summary(p.datum)) for p in result.to_run]
    items += [PlannedItem(p.id, "skip", p.reason, summary(p.datum)) for p in result.skipped]
    items += [PlannedItem(r.id, "remove", r.reason, ()) for r in result.removed]
    return SpecPlan(spec.name, tuple(items))


async def _datums(
    reader: TreeReader, node: Input, path: str, sizes: dict[str, dict[str, int]]
) -> list[Datum]:
    if isinstance(node, Pfs):
        return datums.pfs_datums(await _read(reader, node, f"{path}.pfs", sizes))
    if isinstance(node, Cron):
        raise SpecError(
            f"{path}.cron", "cron inputs cannot be planned yet (a tick is not a listing)"
        )
    kind = {Cross: "cross", Union: "union", Join: "join", Group: "group"}[type(node)]
    where = f"{path}.{kind}"
    if isinstance(node, Join | Group):
        inputs: list[PfsInput] = []
        for i, child in enumerate(node.inputs):
            if not isinstance(child, Pfs):
                raise SpecError(f"{where}[{i}]", f"only pfs inputs can be in a {kind} for now")
            inputs.append(await _read(reader, child, f"{where}[{i}].pfs", sizes))
        try:
            return datums.join(*inputs) if kind == "join" else datums.group(*inputs)
        except ValueError as exc:
            raise SpecError(where, str(exc)) from None
    sets = [
        await _datums(reader, child, f"{where}[{i}]", sizes) for i, child in enumerate(node.inputs)
    ]
    return datums.cross(*sets) if kind == "cross" else datums.union(*sets)


async def _read(
    reader: TreeReader, pfs: Pfs, field: str, sizes: dict[str, dict[str, int]]
) -> PfsInput:
    """The input's listing at its branch head, only under the glob's prefix."""
    try:
        glob = compile_glob(pfs.glob)
    except GlobError as exc:
        raise SpecError(f"{field}.glob", str(exc)) from None
    try:
        view = await reader.branch_view(pfs.repo, pfs.branch)
    except errors.RepoNotFound:
        raise errors.RepoNotFound(f"{field}.repo: repo {pfs.repo!r} does not exist") from None
    except errors.BranchNotFound:
        raise errors.BranchNotFound(
            f"{field}.branch: branch {pfs.branch!r} does not exist in repo {pfs.repo!r}"
        ) from None
    files: dict[str, bytes] = {}
    size_of: dict[str, int] = {}
    prefix = glob.prefix
    entries = reader.iterate(view, prefix)
    try:
        async for key, entry in entries:
            if not key.startswith(prefix):
                break
            files[key] = entry.content
            size_of[key] = entry.size
    finally:
        close = getattr(entries, "aclose", None)
        if close is not None:
            await close()
    sizes[pfs.name] = size_of
    commit = view.commit.hex() if view.commit is not None else ""
    listing = PfsListing(pfs.name, pfs.repo, pfs.branch, commit, files)
    return PfsInput(
        listing, pfs.glob, join_on=pfs.join_on, group_by=pfs.group_by, outer_join=pfs.outer_join
    )
