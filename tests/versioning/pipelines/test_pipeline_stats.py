"""Pipeline statistics (the metrics' jobs, datums and workers) against a real
PostgreSQL, the domain services playing the worker: datums of active jobs
are counted row by row, those of ended jobs from the counts the job
recorded, a stopped job's by row again; workers holding leases and seen
recently; ended datums are handed out once each, after they settle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from versioning.chunkstore.local import LocalChunkStore
from versioning.db import Database
from versioning.db.job_stats import StateCount
from versioning.pipelines import stats as stats_module
from versioning.pipelines.jobs import Completion
from versioning.services import Services, build
from versioning.views import ObjectAttrs, new_entry

ATTRS = ObjectAttrs("text/plain", {}, {})


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _write(svc: Services, repo: str, files: dict[str, bytes]) -> None:
    view = await svc.versioning.branch_view(repo, "main")
    entries = {}
    for key, body in files.items():
        content, result = await svc.versioning.store_content(_pieces(body))
        entries[key] = new_entry(content, result.size, result.md5.hex(), ATTRS)
    await svc.versioning.commit(view, dict(entries), "test", {"op": "test"})


def _by_state(rows: tuple[StateCount, ...], pipeline: str) -> dict[str, int]:
    return {c.state: c.count for c in rows if c.pipeline == pipeline and c.count}


def test_counts_follow_jobs_and_datums_through_their_states(
    fresh_database: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stats_module, "SETTLE_US", 0)
    dsn = fresh_database()

    async def go() -> None:
        db = await Database.connect(dsn, min_size=1, max_size=4)
        svc = build(db, LocalChunkStore(tmp_path / "chunks"))
        stats, jobs = svc.pipeline_stats, svc.control.jobs
        try:
            await svc.control.create_repo("inputs")
            await _write(svc, "inputs", {f"f{i}": b"v" for i in range(4)})
            for name in ("copies", "halted"):
                spec = {
                    "pipeline": {"name": name},
                    "input": {"pfs": {"repo": "inputs", "glob": "/*"}},
                    "transform": {"cmd": ["true"]},
                }
                await svc.control.pipelines.create(spec)
            mark = 0
            ended, mark = await stats.ended_datums(mark)
            assert ended == []

            job = await jobs.maybe_start(await svc.control.pipelines.inspect("copies"))
            halted = await jobs.maybe_start(await svc.control.pipelines.inspect("halted"))
            assert job is not None and halted is not None
            counts = await stats.counts()
            assert _by_state(counts.datums, "copies") == {"pending": 4}
            assert _by_state(counts.jobs, "copies") == {"created": 1}
            assert (counts.workers_leasing, counts.workers_seen) == (0, 0)

            leases = await jobs.lease("w1", 4, pipelines=["copies"])
            assert len(leases) == 4
            await jobs.lease("w2", 1, pipelines=["halted"])
            counts = await stats.counts()
            assert _by_state(counts.datums, "copies") == {"running": 4}
            assert (counts.workers_leasing, counts.workers_seen) == (2, 2)

            for lease in leases[:3]:
                await jobs.complete("w1", Completion(lease["attempt"], "success", process=0.5))
            await jobs.complete("w1", Completion(leases[3]["attempt"], "failed", 1))
            await jobs.stop(halted.id)
            # The failed datum has tries left: pending again; run it once more.
            retry = await jobs.lease("w1", 1, pipelines=["copies"])
            await jobs.complete("w1", Completion(retry[0]["attempt"], "success"))
            assert (await jobs.settle(await jobs.get(job.id))) is not None

            counts = await stats.counts()
            assert _by_state(counts.jobs, "copies") == {"success": 1}
            assert _by_state(counts.datums, "copies") == {"success": 4}  # from the job's stats
            assert _by_state(counts.jobs, "halted") == {"killed": 1}
            assert sum(_by_state(counts.datums, "halted").values()) == 4  # row by row
            assert counts.workers_leasing == 0
            assert counts.workers_seen == 2  # w1 ended attempts, w2's was stopped just now

            await asyncio.sleep(0.01)
            ended, mark = await stats.ended_datums(mark)
            assert sorted(d.state for d in ended) == ["success"] * 4
            assert sum(1 for d in ended if d.process_us == 500_000) == 3
            assert all(d.started is not None and d.finished >= d.started for d in ended)
            again, _ = await stats.ended_datums(mark)
            assert again == []  # each ended datum once
        finally:
            await db.close()

    asyncio.run(go())
