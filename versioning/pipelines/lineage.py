"""Lineage: which input files made an output file (provenance), what was made
from an input file (subvenance), whether everything downstream of a commit
has finished (wait), and the DAG's state.

File-level provenance needs no extra index: each output object's metadata
names its job and datum (output.py), and the datum's row lists the exact
input files (repo, commit, key, content id) it read. Subvenance asks the
datums table which datums read a file with that content (a GIN index on the
inputs). Both walk the DAG, each file once.
"""

from __future__ import annotations

from typing import Any

from versioning import errors
from versioning.db import Database
from versioning.db.jobs import DatumRow, JobRow
from versioning.ids import CommitId
from versioning.pipelines.job_plan import Reader
from versioning.pipelines.output import META_DATUM, META_JOB, META_PIPELINE, _paths
from versioning.pipelines.service import Pipeline, Pipelines
from versioning.pipelines.spec import Pfs, iter_leaves
from versioning.views import View

# How far up or down the DAG a lineage query walks, and how many files it
# reports at most (a safety net for huge fan-ins; the answer says so).
MAX_DEPTH = 32
MAX_FILES = 200_000
# How many commits an ancestry check walks back.
MAX_ANCESTRY = 100_000


class Lineage:
    def __init__(self, db: Database, reader: Reader, pipelines: Pipelines) -> None:
        self.db = db
        self.reader = reader
        self.pipelines = pipelines

    async def _view(self, repo: str, commit: str, cache: dict[tuple[str, str], View]) -> View:
        key = (repo, commit)
        if key not in cache:
            cache[key] = await self.reader.snapshot_view(repo, commit)
        return cache[key]

    # -- provenance ------------------------------------------------------------------

    async def provenance(self, repo: str, commit: CommitId, path: str) -> dict[str, Any]:
        views: dict[tuple[str, str], View] = {}
        outputs = {p.name for p in await self.pipelines.list()}
        budget = [MAX_FILES]
        return await self._prov(repo, commit.hex(), path, outputs, views, {}, 0, budget)

    async def _prov(
        self,
        repo: str,
        commit: str,
        path: str,
        outputs: set[str],
        views: dict[tuple[str, str], View],
        memo: dict[tuple[str, str, str], dict[str, Any]],
        depth: int,
        budget: list[int],
    ) -> dict[str, Any]:
        key = (repo, commit, path)
        if key in memo:
            return memo[key]
        entry = await self.reader.get_entry(await self._view(repo, commit, views), path)
        node: dict[str, Any] = {
            "file": {"repo": repo, "commit": commit, "path": path},
            "producer": None,
            "inputs": [],
        }
        memo[key] = node
        job, datum = entry.metadata.get(META_JOB), entry.metadata.get(META_DATUM)
        if not job or not datum or repo not in outputs:
            return node
        rows = await self.db.jobs.datums_by_key([(job, datum)])
        row = rows.get((job, datum))
        if row is None:
            return node
        name, _, version = entry.metadata.get(META_PIPELINE, f"{repo}@").rpartition("@")
        node["producer"] = {
            "pipeline": name,
            "version": int(version) if version.isdigit() else None,
            "job": job,
            "datum": datum,
        }
        for inp in row.inputs:
            for f in inp["files"]:
                if budget[0] <= 0:
                    node["truncated"] = True
                    return node
                budget[0] -= 1
                child: dict[str, Any] = {
                    "repo": inp["repo"],
                    "commit": inp["commit"],
                    "path": f[0],
                    "provenance": None,
                }
                if inp["repo"] in outputs and depth < MAX_DEPTH:
                    try:
                        up = await self._prov(
                            inp["repo"],
                            inp["commit"],
                            f[0],
                            outputs,
                            views,
                            memo,
                            depth + 1,
                            budget,
                        )
                    except errors.NotFound:
                        up = None
                    if up is not None and up["producer"] is not None:
                        child["provenance"] = up
                node["inputs"].append(child)
        return node

    # -- subvenance ------------------------------------------------------------------

    async def subvenance(self, repo: str, commit: CommitId, path: str) -> dict[str, Any]:
        entry = await self.reader.get_entry(
            await self.reader.snapshot_view(repo, commit.hex()), path
        )
        pipelines = await self.pipelines.list()
        budget = [MAX_FILES]
        derived = await self._sub(repo, path, entry.content.hex(), pipelines, set(), 0, budget)
        return {"file": {"repo": repo, "commit": commit.hex(), "path": path}, "derived": derived}

    async def _sub(
        self,
        repo: str,
        path: str,
        content: str,
        pipelines: list[Pipeline],
        seen: set[tuple[str, str, str]],
        depth: int,
        budget: list[int],
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if depth >= MAX_DEPTH:
            return out
        for p in pipelines:
            if repo not in p.input_repos:
                continue
            rows = await self.db.jobs.datums_reading(p.name, repo, path, content)
            jobs: dict[str, JobRow] = {}
            for row in rows:
                if row.job not in jobs:
                    jobs[row.job] = await self.db.jobs.get_job(row.job)
                job = jobs[row.job]
                if job.state != "success" or job.output_commit is None:
                    continue
                for opath, oentry in (await _paths(self.db, row.output_commit)).items():
                    key = (p.name, job.id, opath)
                    if key in seen or budget[0] <= 0:
                        continue
                    seen.add(key)
                    budget[0] -= 1
                    out.append(
                        {
                            "repo": p.name,
                            "commit": job.output_commit.hex(),
                            "path": opath,
                            "pipeline": p.name,
                            "version": job.version,
                            "job": job.id,
                            "datum": row.id,
                            "derived": await self._sub(
                                p.name,
                                opath,
                                oentry.content.hex(),
                                pipelines,
                                seen,
                                depth + 1,
                                budget,
                            ),
                        }
                    )
        return out

    # -- waiting ---------------------------------------------------------------------

    async def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        if ancestor == descendant:
            return True
        if not descendant:
            return False
        target = await self.db.objects.get_commit(CommitId(bytes.fromhex(ancestor)))
        todo = [CommitId(bytes.fromhex(descendant))]
        seen: set[bytes] = set()
        while todo and len(seen) < MAX_ANCESTRY:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            if current.hex() == ancestor:
                return True
            commit = await self.db.objects.get_commit(current)
            if commit.time < target.time:
                continue
            todo.extend(commit.parents)
        return False

    async def wait_status(self, repo: str, commit: CommitId) -> dict[str, Any]:
        """Whether every job downstream of repo@commit (transitively) has
        ended. A job over a later commit covers the earlier ones."""
        pipelines = await self.pipelines.list()
        jobs_out: list[dict[str, Any]] = []
        waiting: list[str] = []
        done = True
        frontier = [(repo, commit.hex())]
        visited: set[tuple[str, str]] = set()
        while frontier:
            source, at = frontier.pop(0)
            when = (await self.db.objects.get_commit(CommitId(bytes.fromhex(at)))).time
            for p in pipelines:
                if source not in p.input_repos or (p.name, at) in visited:
                    continue
                visited.add((p.name, at))
                covering: JobRow | None = None
                # The newest job covering the commit speaks for it: after a failed
                # job, a fixed version's job over the same input is what to wait for.
                for job in reversed(await self.db.jobs.jobs_reading(source, when)):
                    if job.pipeline != p.name:
                        continue
                    mine = [i.commit for i in job.inputs if i.repo == source]
                    if any([await self.is_ancestor(at, c) for c in mine]):
                        covering = job
                        break
                if covering is None:
                    if p.state == "running":
                        done = False
                        waiting.append(p.name)
                    continue
                counts = await self.db.jobs.counts(covering.id)
                jobs_out.append(job_summary(covering, counts))
                if covering.state in ("created", "running"):
                    done = False
                elif covering.state == "success" and covering.output_commit is not None:
                    frontier.append((p.name, covering.output_commit.hex()))
        return {"done": done, "jobs": jobs_out, "waiting_for": sorted(set(waiting))}

    # -- the DAG -----------------------------------------------------------------------

    async def dag(self) -> dict[str, Any]:
        last = await self.db.jobs.last_jobs()
        items = []
        for p in await self.pipelines.list():
            job = last.get(p.name)
            items.append(
                {
                    "name": p.name,
                    "state": p.state,
                    "version": p.version,
                    "inputs": list(p.input_repos),
                    "input_branches": [
                        f"{leaf.repo}@{leaf.branch}"
                        for _, leaf in iter_leaves(p.spec.input)
                        if isinstance(leaf, Pfs)
                    ],
                    "output_branch": f"{p.name}@{p.spec.output_branch}",
                    "last_job": {"id": job.id, "state": job.state} if job is not None else None,
                }
            )
        return {"pipelines": items}


def job_summary(job: JobRow, counts: dict[str, int]) -> dict[str, Any]:
    stats = job.stats or {}
    unchanged = int(stats.get("unchanged", 0))
    datums = {
        s: counts.get(s, 0)
        for s in ("pending", "running", "success", "failed", "skipped", "recovered", "killed")
    }
    datums["unchanged"] = unchanged
    datums["total"] = sum(counts.values()) + unchanged
    return {"pipeline": job.pipeline, "job": job.id, "state": job.state, "datums": datums}


__all__ = ["DatumRow", "Lineage", "job_summary"]
