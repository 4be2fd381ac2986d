"""Planning a job: which datums it runs, which it reuses, which outputs go.

Two ways, with one outcome:

- **Incremental** (the common case): from the pipeline's last successful job
  (same salt, same input spec, inputs that are pfs or a union of pfs), the tree
  diff between that job's input commits and the new ones gives the changed
  keys; `Glob.datums_of` maps them to datum paths, and only those paths are
  listed again and hashed. Unchanged datums stay live untouched: the cost
  follows the change, not the input's size.
- **Full**: the first job, a new salt, another input spec, cross/join/group
  inputs or `reprocess_spec: every_job`: every input is listed (under each
  glob's prefix) and every datum hashed.

Either way a datum whose id succeeded in ANY earlier job under the salt is
reused (its outputs are copied from that job's row), not only in the last
job; the live datums (what the output branch holds, `live_datums`) tell
what is unchanged and which outputs must go.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from versioning import commit_log, errors
from versioning.content import Ingested
from versioning.db import Database
from versioning.db.jobs import JobInput, JobRow, LiveDatum, NewDatum, PastOutcome
from versioning.ids import CommitId, ContentId
from versioning.model import ObjectEntry
from versioning.pipelines import datums, planner
from versioning.pipelines.datums import Datum, DatumInput, datum_id, datum_location
from versioning.pipelines.globs import compile_glob
from versioning.pipelines.spec import Pfs, PipelineSpec, Union, iter_leaves, to_json
from versioning.tree import Root
from versioning.views import View


class Reader(planner.TreeReader, Protocol):
    """What job planning reads: `Versioning` is one."""

    async def snapshot_view(self, repo: str, commit_hex: str) -> View: ...

    async def get_entry(self, view: View, key: str) -> ObjectEntry: ...

    async def small_content(self, repo: str, content: ContentId, limit: int) -> bytes | None: ...

    async def store_content(self, pieces: AsyncIterator[bytes]) -> tuple[ContentId, Ingested]: ...


@dataclass(frozen=True, slots=True)
class JobPlan:
    kind: str  # "full" or "incremental"
    run: list[NewDatum]
    reuse: list[NewDatum]
    removed: list[str]  # live locations with no datum any more
    unchanged: int  # live datums kept as they are (counted for a full plan only)
    listed_keys: int  # keys read to plan: what the plan cost
    seconds: float
    reasons: dict[str, int] = field(default_factory=dict)


class _AtCommits:
    """A TreeReader whose branch heads are the job's chosen input commits."""

    def __init__(self, reader: Reader, commits: dict[tuple[str, str], str]) -> None:
        self.reader = reader
        self.commits = commits
        self.keys = 0

    async def branch_view(self, repo: str, name: str | None) -> View:
        commit = self.commits.get((repo, name or ""), "")
        if not commit:
            return View(repo, name, None, None)
        return await self.reader.snapshot_view(repo, commit)

    async def iterate(self, view: View, start: str = "") -> AsyncIterator[tuple[str, ObjectEntry]]:
        async for item in self.reader.iterate(view, start):
            self.keys += 1
            yield item


def _encode(
    datum: Datum, sizes: dict[str, dict[str, int]], s3: dict[str, bool]
) -> list[dict[str, object]]:
    return [
        {
            "name": d.name,
            "repo": d.repo,
            "branch": d.branch,
            "commit": d.commit,
            "path": d.path,
            "s3": s3.get(d.name, False),
            "files": [[k, c.hex(), sizes.get(d.name, {}).get(k, 0)] for k, c in d.files],
        }
        for d in datum
    ]


def incremental_ok(
    spec: PipelineSpec, base: JobRow | None, base_spec: PipelineSpec | None, salt: str
) -> bool:
    if base is None or base_spec is None or base.salt != salt:
        return False
    if spec.reprocess_spec.value == "every_job":
        return False
    if json.dumps(to_json(spec)["input"], sort_keys=True) != json.dumps(
        to_json(base_spec)["input"], sort_keys=True
    ):
        return False
    node = spec.input
    if isinstance(node, Pfs):
        return True
    return isinstance(node, Union) and all(isinstance(c, Pfs) for c in node.inputs)


class JobPlanner:
    def __init__(self, db: Database, reader: Reader) -> None:
        self.db = db
        self.reader = reader

    async def plan(
        self,
        pipeline: str,
        spec: PipelineSpec,
        salt: str,
        inputs: dict[str, JobInput],
        base: JobRow | None,
        base_spec: PipelineSpec | None,
    ) -> JobPlan:
        started = time.perf_counter()
        s3 = {leaf.name: leaf.s3 for _, leaf in iter_leaves(spec.input) if isinstance(leaf, Pfs)}
        if incremental_ok(spec, base, base_spec, salt):
            assert base is not None
            result = await self._incremental(pipeline, spec, salt, inputs, base, s3)
        else:
            result = await self._full(pipeline, spec, salt, inputs, s3)
        return JobPlan(
            result.kind,
            result.run,
            result.reuse,
            result.removed,
            result.unchanged,
            result.listed_keys,
            time.perf_counter() - started,
            result.reasons,
        )

    # -- decisions shared by both ----------------------------------------------------

    @staticmethod
    def _decide(
        did: str,
        location: str,
        encoded: list[dict[str, object]],
        live: LiveDatum | None,
        past: PastOutcome | None,
        every_job: bool,
        out: JobPlan,
    ) -> None:
        if live is not None and live.id == did and live.outcome == "success" and not every_job:
            out.reasons["unchanged"] = out.reasons.get("unchanged", 0) + 1
            return
        if past is not None and past.state == "success" and past.has_output and not every_job:
            reason = "unchanged since an older job"
            out.reuse.append(
                NewDatum(did, location, "skipped", reason, encoded, past.output_commit, past.job)
            )
        else:
            if past is not None and past.state == "failed":
                reason = "failed last time"
            elif past is not None and past.state == "recovered":
                reason = "recovered last time"
            elif every_job and past is not None:
                reason = "reprocess"
            elif live is not None:
                reason = "content changed"
            else:
                reason = "new"
            out.run.append(NewDatum(did, location, "pending", reason, encoded))
        out.reasons[reason] = out.reasons.get(reason, 0) + 1

    # -- full --------------------------------------------------------------------------

    async def _full(
        self,
        pipeline: str,
        spec: PipelineSpec,
        salt: str,
        inputs: dict[str, JobInput],
        s3: dict[str, bool],
    ) -> JobPlan:
        commits = {(i.repo, i.branch): i.commit for i in inputs.values()}
        reader = _AtCommits(self.reader, commits)
        sizes: dict[str, dict[str, int]] = {}
        current = await planner._datums(reader, spec.input, "input", sizes)
        by_id: dict[str, Datum] = {}
        for d in current:
            by_id.setdefault(datum_id(d, salt), d)
        live = {x.location: x for x in await self.db.jobs.live_all(pipeline)}
        past = await self.db.jobs.outcomes(pipeline, salt, list(by_id))
        every_job = spec.reprocess_spec.value == "every_job"
        out = JobPlan("full", [], [], [], 0, reader.keys, 0.0)
        seen: set[str] = set()
        for did, d in by_id.items():
            location = datum_location(d)
            seen.add(location)
            self._decide(
                did,
                location,
                _encode(d, sizes, s3),
                live.get(location),
                past.get(did),
                every_job,
                out,
            )
        removed = sorted(loc for loc in live if loc not in seen)
        unchanged = out.reasons.get("unchanged", 0)
        return JobPlan(
            "full", out.run, out.reuse, removed, unchanged, reader.keys, 0.0, out.reasons
        )

    # -- incremental ---------------------------------------------------------------

    async def _incremental(
        self,
        pipeline: str,
        spec: PipelineSpec,
        salt: str,
        inputs: dict[str, JobInput],
        base: JobRow,
        s3: dict[str, bool],
    ) -> JobPlan:
        leaves = {leaf.name: leaf for _, leaf in iter_leaves(spec.input) if isinstance(leaf, Pfs)}
        before = {i.name: i.commit for i in base.inputs}
        affected: dict[str, set[str]] = {name: set() for name in leaves}
        for name, leaf in leaves.items():
            old, new = before.get(name, ""), inputs[name].commit
            if old == new:
                continue
            glob = compile_glob(leaf.glob)
            async for change in commit_log.changes(
                self.db.objects, await self._root(old), await self._root(new), glob.prefix
            ):
                affected[name].update(glob.datums_of(change.path))
        # Datums recovered last time run again, changed or not.
        recovered = await self.db.jobs.live_recovered(pipeline)
        if recovered:
            rows = await self.db.jobs.datums_by_key([(x.job, x.id) for x in recovered])
            for row in rows.values():
                for inp in row.inputs:
                    if inp["name"] in affected:
                        affected[str(inp["name"])].add(str(inp["path"]))
        listed = 0
        found: list[tuple[str, str, list[dict[str, object]] | None, str]] = []
        for name, paths in affected.items():
            leaf = leaves[name]
            glob = compile_glob(leaf.glob)
            commit = inputs[name].commit
            view = (
                await self.reader.snapshot_view(leaf.repo, commit)
                if commit
                else View(leaf.repo, leaf.branch, None, None)
            )
            for path in sorted(paths):
                files, sizes = await self._under(view, path)
                listed += len(files)
                keys = glob.match(files).get(path, [])
                if keys:
                    di = DatumInput(
                        name,
                        leaf.repo,
                        leaf.branch,
                        commit,
                        path,
                        tuple((k, files[k]) for k in keys),
                    )
                    d: Datum = (di,)
                    found.append(
                        (datum_id(d, salt), datum_location(d), _encode(d, {name: sizes}, s3), path)
                    )
                else:
                    empty: Datum = (DatumInput(name, leaf.repo, leaf.branch, commit, path, ()),)
                    found.append(("", datum_location(empty), None, path))
        live = await self.db.jobs.live_at(pipeline, [f[1] for f in found])
        past = await self.db.jobs.outcomes(pipeline, salt, [f[0] for f in found if f[0]])
        out = JobPlan("incremental", [], [], [], 0, listed, 0.0)
        removed: list[str] = []
        for did, location, encoded, _ in found:
            if encoded is None:
                if location in live:
                    removed.append(location)
                continue
            self._decide(did, location, encoded, live.get(location), past.get(did), False, out)
        changed = {d.location for d in out.run} | {d.location for d in out.reuse}
        replaced = sum(1 for loc in live if loc in changed)
        removed = sorted(set(removed))
        unchanged = await self.db.jobs.live_count(pipeline) - replaced - len(removed)
        return JobPlan(
            "incremental", out.run, out.reuse, removed, unchanged, listed, 0.0, out.reasons
        )

    async def _root(self, commit_hex: str) -> Root:
        if not commit_hex:
            return None
        commit = await self.db.objects.get_commit(CommitId(bytes.fromhex(commit_hex)))
        return commit_log.tree_of(commit)

    async def _under(self, view: View, path: str) -> tuple[dict[str, bytes], dict[str, int]]:
        """Every key a datum path covers: the key itself and those under it."""
        stem = path[1:]
        files: dict[str, bytes] = {}
        sizes: dict[str, int] = {}
        starts = [(stem, stem + "/")] if stem else [("", "")]
        if stem:
            try:
                entry = await self.reader.get_entry(view, stem)
            except errors.ObjectNotFound:
                pass
            else:
                files[stem], sizes[stem] = entry.content, entry.size
        for start, prefix in starts:
            entries = self.reader.iterate(view, prefix)
            try:
                async for key, entry in entries:
                    if not key.startswith(prefix):
                        break
                    files[key] = entry.content
                    sizes[key] = entry.size
            finally:
                close = getattr(entries, "aclose", None)
                if close is not None:
                    await close()
            del start
        return files, sizes


__all__ = ["JobPlan", "JobPlanner", "datums"]
