"""Wiring the domain: one Database and chunk store, the services built on
them, and which of them each protocol layer gets.

s3api gets `versioning` (views, objects, branches, uploads); the control API
gets `control` (refs, logs, diffs, open commits, merges, pipelines). Both share one
committer, so writes from either protocol queue on the same branch heads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from versioning.branches import DEFAULT_TRASH_SECONDS
from versioning.chunker import StreamChunker
from versioning.chunkstore.base import ChunkStore
from versioning.content import DEFAULT_INLINE_MAX
from versioning.control import Control
from versioning.db import Database
from versioning.open_commits import DEFAULT_OPEN_IDLE_SECONDS, OpenCommits
from versioning.pipelines.egress import Egress
from versioning.pipelines.jobs import DEFAULT_LEASE_SECONDS, Jobs
from versioning.pipelines.lineage import Lineage
from versioning.pipelines.planner import PipelinePlanner
from versioning.pipelines.scheduler import Scheduler
from versioning.pipelines.service import Pipelines
from versioning.pipelines.stats import PipelineStats
from versioning.repository import Versioning


@dataclass(frozen=True, slots=True)
class Services:
    db: Database
    versioning: Versioning
    control: Control
    scheduler: Scheduler
    # Counts for the operator's view (the gateway's metrics).
    pipeline_stats: PipelineStats


def build(
    db: Database,
    store: ChunkStore,
    *,
    author: str = "loxo",
    inline_max: int = DEFAULT_INLINE_MAX,
    chunker_factory: Callable[[], StreamChunker] = StreamChunker,
    ingest_memory: int | None = None,
    open_idle_seconds: float = DEFAULT_OPEN_IDLE_SECONDS,
    trash_seconds: float = DEFAULT_TRASH_SECONDS,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> Services:
    versioning = Versioning(
        db,
        store,
        author=author,
        inline_max=inline_max,
        chunker_factory=chunker_factory,
        ingest_memory=ingest_memory,
    )
    versioning.branches.trash_seconds = trash_seconds
    open_commits = OpenCommits(db, versioning.committer, author, open_idle_seconds)
    pipelines = Pipelines(db, versioning.branches)
    jobs = Jobs(db, versioning, versioning.committer, pipelines, author, lease_seconds)
    jobs.on_success.append(Egress(db, versioning))
    control = Control(
        db,
        versioning.branches,
        versioning.committer,
        open_commits,
        author,
        versioning.purges,
        uploads=versioning.uploads,
        pipeline_planner=PipelinePlanner(versioning),
        pipelines=pipelines,
        jobs=jobs,
        lineage=Lineage(db, versioning, pipelines),
    )
    # One gateway of those sharing the database runs the scheduler at a time.
    scheduler = Scheduler(jobs, pipelines, versioning, leader=db.leadership())
    return Services(db, versioning, control, scheduler, PipelineStats(db))
