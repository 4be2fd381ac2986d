"""The pipelines' lifecycle: create, update, list, inspect, stop, start and
delete (jobs: jobs.py). A pipeline writes the repo of its own name, which
`create` makes, as it makes each cron input's repo (cron.py); its spec is
versioned, and its salt (which enters every datum hash) changes only when an
update asks to reprocess everything."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from versioning import errors
from versioning.branches import Branches
from versioning.clock import now_us
from versioning.db import Database
from versioning.db.pipelines import RUNNING, STOPPED, PipelineRow
from versioning.pipelines.cron import MAX_REPO_NAME, cron_inputs, cron_repo
from versioning.pipelines.dag import check_dag
from versioning.pipelines.spec import Pfs, PipelineSpec, SpecError, iter_leaves, parse_spec, to_json


@dataclass(frozen=True, slots=True)
class Pipeline:
    name: str
    state: str  # "running" or "stopped"
    version: int
    salt: str
    spec: PipelineSpec  # the current version's
    created: int  # microseconds since the epoch
    updated: int
    reprocess: bool  # the current version came with a new salt

    @property
    def input_repos(self) -> tuple[str, ...]:
        """The repos its pfs inputs read, in spec order, each once."""
        return _pipeline_inputs(self.spec)


def _pipeline_inputs(spec: PipelineSpec) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for _, leaf in iter_leaves(spec.input):
        if isinstance(leaf, Pfs):
            seen.setdefault(leaf.repo, None)
    return tuple(seen)


def new_salt() -> str:
    return secrets.token_hex(16)


def _canonical(spec: PipelineSpec) -> str:
    return json.dumps(to_json(spec), separators=(",", ":"))


def _pipeline(row: PipelineRow) -> Pipeline:
    return Pipeline(
        row.name,
        row.state,
        row.version,
        row.salt,
        parse_spec(json.loads(row.spec)),
        row.created,
        row.updated,
        row.reprocess,
    )


def _parse(spec: PipelineSpec | Mapping[str, Any] | str) -> PipelineSpec:
    if isinstance(spec, PipelineSpec):
        return spec
    try:
        return parse_spec(spec)
    except SpecError as exc:
        raise errors.InvalidSpec(exc.message, exc.field) from None


class Pipelines:
    def __init__(self, db: Database, branches: Branches) -> None:
        self.db = db
        self.branches = branches

    async def _all_repos(self) -> list[str]:
        names: list[str] = []
        after = ""
        while True:
            page = await self.branches.list_repos(after, 1000)
            names.extend(r.name for r in page)
            if len(page) < 1000:
                return names
            after = page[-1].name

    async def _check_dag(self, spec: PipelineSpec) -> None:
        """The DAG with `spec` in it (new, or replacing its current version):
        its inputs exist, and it makes no cycle."""
        others = {p.name: p for p in await self.list() if p.name != spec.name}
        specs = {name: p.spec for name, p in others.items()}
        specs[spec.name] = spec
        repos = {r for r in await self._all_repos() if r not in specs}
        # Another pipeline's input repo may be gone meanwhile (deleted, or an
        # upstream pipeline deleted with its repo): that is no reason to
        # refuse this spec, unless this spec reads it too.
        mine = set(_pipeline_inputs(spec))
        for other in others.values():
            repos.update(r for r in other.input_repos if r not in specs and r not in mine)
        try:
            check_dag(specs, repos)
        except SpecError as exc:
            raise errors.InvalidSpec(exc.message, exc.field) from None

    async def create(self, spec: PipelineSpec | Mapping[str, Any] | str) -> Pipeline:
        """A running pipeline, version 1 with a fresh salt, and its output
        repo (the pipeline's name). InvalidSpec for a refused spec or DAG;
        PipelineExists; RepoExists when a repo has the name already."""
        parsed = _parse(spec)
        try:
            await self.db.pipelines.get_pipeline(parsed.name)
        except errors.PipelineNotFound:
            pass
        else:
            raise errors.PipelineExists(parsed.name)
        try:
            await self.branches.get_repo(parsed.name)
        except errors.RepoNotFound:
            pass
        else:
            raise errors.RepoExists(
                f"repo {parsed.name!r} already exists and is no pipeline's output: "
                "a pipeline writes the repo of its own name; pick another name"
            )
        await self._check_dag(parsed)
        self._check_cron_names(parsed)
        # The row first: its primary key settles a race between two creates.
        row = await self.db.pipelines.create_pipeline(
            parsed.name, _canonical(parsed), new_salt(), now_us()
        )
        try:
            await self.branches.create_repo(parsed.name)
            await self._cron_repos(parsed)
        except BaseException:
            await self.db.pipelines.delete_pipeline(parsed.name)
            raise
        return _pipeline(row)

    async def _cron_repos(self, spec: PipelineSpec) -> None:
        """Each cron input's repo (`<pipeline>-<input name>`), made if missing."""
        for path, cron in cron_inputs(spec):
            name = cron_repo(spec.name, cron)
            if len(name) > MAX_REPO_NAME:
                raise errors.InvalidSpec(
                    f"the cron input's repo {name!r} (pipeline name, '-', input name) is "
                    f"longer than {MAX_REPO_NAME} characters: shorten the input name",
                    f"{path}.name",
                )
            with contextlib.suppress(errors.RepoExists):
                await self.branches.create_repo(name)

    def _check_cron_names(self, spec: PipelineSpec) -> None:
        for path, cron in cron_inputs(spec):
            if len(cron_repo(spec.name, cron)) > MAX_REPO_NAME:
                raise errors.InvalidSpec(
                    f"the cron input's repo {cron_repo(spec.name, cron)!r} (pipeline name, "
                    f"'-', input name) is longer than {MAX_REPO_NAME} characters",
                    f"{path}.name",
                )

    async def update(
        self,
        name: str,
        spec: PipelineSpec | Mapping[str, Any] | str,
        reprocess: bool = False,
    ) -> Pipeline:
        """A new version of `name`'s spec; the salt is kept unless `reprocess`
        (then a new one: every datum is new to the next job)."""
        parsed = _parse(spec)
        if parsed.name != name:
            raise errors.InvalidSpec(
                f"is {parsed.name!r}, but the pipeline updated is {name!r}", "pipeline.name"
            )
        current = await self.db.pipelines.get_pipeline(name)
        await self._check_dag(parsed)
        self._check_cron_names(parsed)
        await self._cron_repos(parsed)
        salt = new_salt() if reprocess else current.salt
        row = await self.db.pipelines.add_version(
            name, _canonical(parsed), salt, reprocess, now_us()
        )
        return _pipeline(row)

    async def list(self) -> list[Pipeline]:
        return [_pipeline(r) for r in await self.db.pipelines.list_pipelines()]

    async def any(self) -> bool:
        """Whether any pipeline exists (in any state)."""
        return await self.db.pipelines.any_pipeline()

    async def inspect(self, name: str) -> Pipeline:
        return _pipeline(await self.db.pipelines.get_pipeline(name))

    async def stop(self, name: str) -> Pipeline:
        """No new jobs until started again."""
        return _pipeline(await self.db.pipelines.set_state(name, STOPPED, now_us()))

    async def start(self, name: str) -> Pipeline:
        return _pipeline(await self.db.pipelines.set_state(name, RUNNING, now_us()))

    async def delete(self, name: str, keep_repo: bool = False) -> None:
        """The pipeline and its versions; its output repo goes to the trash
        (restorable) unless `keep_repo`, and is left alone if already gone."""
        pipeline = await self.inspect(name)
        if not keep_repo:
            for repo in [name, *(cron_repo(name, c) for _, c in cron_inputs(pipeline.spec))]:
                with contextlib.suppress(errors.RepoNotFound):
                    await self.branches.delete_repo(repo)
        await self.db.pipelines.delete_pipeline(name)
