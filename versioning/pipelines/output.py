"""A job's output commit: the previous output, minus the outputs of datums
that are gone or were replaced, plus the outputs of the datums the job ran or
reused. ONE commit, made only when the job succeeds.

Each output object's metadata names its producer (`loxo-pipeline`,
`loxo-job`, `loxo-datum`, `loxo-inputs`), which is how an S3 HEAD shows where
an object came from, how file-level provenance starts, and how a path written
by a datum that stays live is told apart from one the job may overwrite.

Cost: the trees of the changed datums' output commits, plus one lookup in
the previous output per new path; never the whole output.

Idempotent: when the output branch's head is already this job's commit (a
crash after committing, before recording), it is taken as is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from versioning import tree
from versioning.committer import Change, Committer
from versioning.db import Database
from versioning.db.jobs import DatumRow, JobRow, LiveDatum
from versioning.ids import CommitId
from versioning.model import ObjectEntry
from versioning.names import new_version
from versioning.pipelines.spec import PipelineSpec

META_PIPELINE = "loxo-pipeline"
META_JOB = "loxo-job"
META_DATUM = "loxo-datum"
META_INPUTS = "loxo-inputs"
META_KEYS = (META_PIPELINE, META_JOB, META_DATUM, META_INPUTS)
MAX_LISTED = 20


class DuplicateOutputs(Exception):
    """Two datums wrote the same path: the job fails and names them."""

    def __init__(self, clashes: dict[str, tuple[str, str]]) -> None:
        paths = sorted(clashes)
        shown = ", ".join(
            f"{p} (datums {clashes[p][0][:12]} and {clashes[p][1][:12]})"
            for p in paths[:MAX_LISTED]
        )
        more = f" and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else ""
        super().__init__(f"{len(paths)} output path(s) written by two datums: {shown}{more}")
        self.paths = paths


@dataclass(frozen=True, slots=True)
class Built:
    commit: CommitId | None
    live: list[LiveDatum]
    stats: dict[str, Any] = field(default_factory=dict)


def inputs_text(row: DatumRow) -> str:
    return ",".join(f"{i['repo']}@{i['commit']}" for i in row.inputs)


async def _paths(db: Database, commit: CommitId | None) -> dict[str, ObjectEntry]:
    if commit is None:
        return {}
    root = (await db.objects.get_commit(commit)).tree
    out: dict[str, ObjectEntry] = {}
    async for key, entry in tree.iterate(db.objects, root or None, ""):  # type: ignore[arg-type]
        out[key] = entry
    return out


async def commit_job(
    db: Database,
    reader: Any,
    committer: Committer,
    job: JobRow,
    spec: PipelineSpec,
    author: str,
) -> Built:
    del reader
    rows = await db.jobs.finished_datums(job.id)
    live = await db.jobs.live_at(job.pipeline, [r.location for r in rows] + list(job.removed))
    put = [
        LiveDatum(
            r.location,
            r.id,
            job.id,
            "recovered" if r.state == "recovered" else "success",
            r.output_commit if r.state != "recovered" else None,
        )
        for r in rows
    ]
    branch = spec.output_branch
    head = (await db.refs.get_branch(job.pipeline, branch)).head
    if head is not None:
        commit = await db.objects.get_commit(head)
        if commit.origin.get("job") == job.id:
            return Built(head, put, {"recovered_commit": True})
    # What goes: the outputs of removed datums, and of those replaced at a location.
    old: dict[str, str] = {}
    replaced_ids: set[str] = set()
    for location in list(job.removed) + [r.location for r in rows]:
        was = live.get(location)
        if was is None or was.output_commit is None:
            continue
        replaced_ids.add(was.id)
        for path in await _paths(db, was.output_commit):
            old[path] = was.id
    # What comes: each new datum's outputs, stamped with their producer.
    new: dict[str, ObjectEntry] = {}
    owner: dict[str, str] = {}
    clashes: dict[str, tuple[str, str]] = {}
    for row in rows:
        if row.state == "recovered" or row.output_commit is None:
            continue
        stamp = {
            META_PIPELINE: f"{job.pipeline}@{job.version}",
            META_JOB: job.id,
            META_DATUM: row.id,
            META_INPUTS: inputs_text(row),
        }
        for path, entry in (await _paths(db, row.output_commit)).items():
            if path in owner:
                clashes[path] = (owner[path], row.id)
                continue
            owner[path] = row.id
            meta = {k: v for k, v in entry.metadata.items() if k not in META_KEYS}
            new[path] = dataclasses.replace(
                entry, metadata={**meta, **stamp}, version=new_version()
            )
    # A new path over a kept datum's output is a clash too.
    root = (await db.objects.get_commit(head)).tree if head is not None else None
    for path in new:
        if path in old:
            continue
        there = await tree.lookup(db.objects, root or None, path)  # type: ignore[arg-type]
        if there is None:
            continue
        producer = there.metadata.get(META_DATUM)
        if producer and producer not in replaced_ids and there.metadata.get(META_JOB):
            clashes[path] = (producer, owner[path])
    if clashes:
        raise DuplicateOutputs(clashes)
    edits: dict[str, ObjectEntry | None] = {p: None for p in old if p not in new}
    edits.update(new)
    origin = {
        "op": "job",
        "pipeline": job.pipeline,
        "version": job.version,
        "job": job.id,
        "inputs": [f"{i.repo}@{i.commit}" for i in job.inputs if i.commit],
        "commit_set": job.commit_set,
    }
    made = await committer.submit(
        job.pipeline,
        branch,
        Change(
            edits=edits,
            message=f"job {job.id} of pipeline {job.pipeline}@{job.version}",
            author=author,
            origin=origin,
        ),
    )
    if made is None:
        made = head
    stats = {"written": len(new), "deleted": len(edits) - len(new)}
    return Built(made, put, stats)
