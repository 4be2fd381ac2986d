"""Jobs against a real PostgreSQL, the domain services playing the worker:
after any sequence of input changes, each job's output is exactly what a
from-scratch run over the current input would make, the incremental plan
decides what the full plan decides, and a job runs only what changed.

The "worker" here writes each datum's outputs into the attempt's output
bucket (its open commit's staging branch) through the domain, as the HTTP
worker does through S3; workers over HTTP are tested in tests/workers and
tests/e2e.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from versioning import errors
from versioning.chunkstore.local import LocalChunkStore
from versioning.db import Database
from versioning.db.jobs import JobRow
from versioning.model import ObjectEntry
from versioning.pipelines.jobs import Completion
from versioning.pipelines.output import META_DATUM
from versioning.services import Services, build
from versioning.views import ObjectAttrs, new_entry

ATTRS = ObjectAttrs("text/plain", {}, {})
KEYS = ["a", "b/x", "b/y", "c/d/e", "c/d/f", "c/g", "h/i"]
GLOBS = ["/*", "/*/*", "/", "/c/*", "/**"]


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _services(dsn: str, chunks: Path) -> Services:
    db = await Database.connect(dsn, min_size=1, max_size=8)
    return build(db, LocalChunkStore(chunks))


async def _write(svc: Services, repo: str, branch: str, edits: dict[str, bytes | None]) -> None:
    view = await svc.versioning.branch_view(repo, branch)
    entries: dict[str, ObjectEntry | None] = {}
    for key, body in edits.items():
        if body is None:
            entries[key] = None
            continue
        content, result = await svc.versioning.store_content(_pieces(body))
        entries[key] = new_entry(content, result.size, result.md5.hex(), ATTRS)
    await svc.versioning.commit(view, entries, "test", {"op": "test"})


async def _tree(svc: Services, repo: str) -> dict[str, bytes]:
    view = await svc.versioning.branch_view(repo, "main")
    return {k: e.content async for k, e in svc.versioning.iterate(view)}


def _out_key(datum_path: str, key: str) -> str:
    # Nested datums (a ** glob) cover the same key: keep their outputs apart.
    return f"out{datum_path.rstrip('/')}/.files/{key}"


async def _work(svc: Services, fail: Callable[[str], bool] = lambda key: False) -> int:
    """Run every leasable datum: copy its files to the output bucket. Returns how many ran."""
    ran = 0
    while True:
        leases = await svc.control.jobs.lease("test-worker", 100)
        if not leases:
            return ran
        for lease in leases:
            ran += 1
            repo, bucket_id = lease["output_bucket"].split(".", 1)
            staging = "_open-" + bucket_id
            keys = [
                (inp["path"], f["key"], inp["commit"], inp["repo"])
                for inp in lease["inputs"]
                for f in inp["files"]
            ]
            if any(fail(k) for _, k, _, _ in keys):
                result = Completion(lease["attempt"], "failed", 1, stderr="refused")
                await svc.control.jobs.complete("test-worker", result)
                continue
            edits: dict[str, ObjectEntry | None] = {}
            for path, key, commit, in_repo in keys:
                view = await svc.versioning.snapshot_view(in_repo, commit)
                edits[_out_key(path, key)] = await svc.versioning.get_entry(view, key)
            if edits:
                out_view = await svc.versioning.branch_view(repo, staging)
                await svc.versioning.commit(out_view, edits, "datum", {"op": "test"})
            await svc.control.jobs.complete("test-worker", Completion(lease["attempt"], "success"))


async def _settle(svc: Services, pipeline: str) -> JobRow | None:
    """Start a job if inputs moved, run it, end it; the job (None if none started)."""
    started = await svc.control.jobs.maybe_start(await svc.control.pipelines.inspect(pipeline))
    if started is None:
        return None
    for _ in range(100):
        await _work(svc)
        ended = await svc.control.jobs.settle(await svc.control.jobs.get(started.id))
        if ended is not None:
            return ended
    raise AssertionError("the job never ended")


def _expected(glob: str, files: dict[str, bytes]) -> dict[str, bytes]:
    from versioning.pipelines.globs import compile_glob

    out = {}
    for path, keys in compile_glob(glob).match(files).items():
        for key in keys:
            out[_out_key(path, key)] = files[key]
    return out


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


changes = st.lists(
    st.dictionaries(
        st.sampled_from(KEYS),
        st.one_of(st.none(), st.sampled_from([b"1", b"2", b"3"])),
        min_size=1,
        max_size=3,
    ),
    min_size=1,
    max_size=5,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(glob=st.sampled_from(GLOBS), steps=changes)
def test_every_job_output_equals_a_from_scratch_run(
    fresh_database: Callable[[], str],
    tmp_path: Path,
    glob: str,
    steps: list[dict[str, bytes | None]],
) -> None:
    dsn = fresh_database()

    async def go() -> None:
        svc = await _services(dsn, tmp_path / "chunks")
        try:
            await svc.control.create_repo("inputs")
            await _write(svc, "inputs", "main", {"a": b"0", "b/x": b"0"})
            spec = {
                "pipeline": {"name": "copies"},
                "input": {"pfs": {"repo": "inputs", "glob": glob}},
                "transform": {"cmd": ["true"]},
            }
            await svc.control.pipelines.create(spec)
            first = await _settle(svc, "copies")
            assert first is not None and first.state == "success"
            assert first.stats["plan"] == "full"
            for edits in steps:
                before = await _tree(svc, "inputs")
                await _write(svc, "inputs", "main", edits)
                now = await _tree(svc, "inputs")
                job = await _settle(svc, "copies")
                if before == now:
                    continue
                assert job is not None and job.state == "success", job
                assert job.stats["plan"] == "incremental"
                files = {k: b"" for k in now}
                got = {k: c for k, c in (await _tree(svc, "copies")).items()}
                want = _expected(glob, {k: now[k] for k in files})
                assert got == want
                # Only datums covering a changed key ran (or were reused).
                changed = {k for k in set(before) | set(now) if before.get(k) != now.get(k)}
                from versioning.pipelines.globs import compile_glob

                touched = {p for k in changed for p in compile_glob(glob).datums_of(k)}
                assert job.stats["run"] + job.stats["reused"] <= len(touched)
        finally:
            await svc.db.close()

    _run(go())


def test_skips_reuse_any_earlier_job_and_failures_rerun_alone(
    fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    dsn = fresh_database()

    async def go() -> None:
        svc = await _services(dsn, tmp_path / "chunks")
        try:
            await svc.control.create_repo("inputs")
            await _write(svc, "inputs", "main", {f"f{i}": b"v1" for i in range(6)})
            spec = {
                "pipeline": {"name": "copies"},
                "input": {"pfs": {"repo": "inputs", "glob": "/*"}},
                "transform": {"cmd": ["true"]},
                "datum_tries": 2,
            }
            await svc.control.pipelines.create(spec)
            assert (await _settle(svc, "copies")) is not None
            # Change f0, then change it back: the second job reuses the first's result.
            await _write(svc, "inputs", "main", {"f0": b"v2"})
            second = await _settle(svc, "copies")
            assert second is not None and second.stats["run"] == 1
            await _write(svc, "inputs", "main", {"f0": b"v1"})
            third = await _settle(svc, "copies")
            assert third is not None and (third.stats["run"], third.stats["reused"]) == (0, 1)
            reused = await svc.control.jobs.datums(third.id, None, 0, 10)
            assert [(d.state, d.reason) for d in reused] == [
                ("skipped", "unchanged since an older job")
            ]
            out = await svc.versioning.branch_view("copies", "main")
            entry = await svc.versioning.get_entry(out, "out/f0/.files/f0")
            assert entry.metadata[META_DATUM] == reused[0].id
            # A failing datum: the job fails, the output branch stays, the rest is kept.
            head = (await svc.control.get_branch("copies", "main")).head
            await _write(svc, "inputs", "main", {"f1": b"bad", "f2": b"v3"})
            started = await svc.control.jobs.maybe_start(
                await svc.control.pipelines.inspect("copies")
            )
            assert started is not None
            for _ in range(5):
                await _work(svc, fail=lambda key: key == "f1")
            failed = await svc.control.jobs.settle(started)
            assert failed is not None and failed.state == "failure"
            assert "1 datum(s) failed" in failed.reason
            assert (await svc.control.get_branch("copies", "main")).head == head
            rows = await svc.control.jobs.datums(failed.id, None, 0, 10)
            assert sorted((d.state, d.tries) for d in rows) == [("failed", 2), ("success", 1)]
            # The code fix: a new version (same salt) runs only the failed datum.
            await svc.control.pipelines.update("copies", {**spec, "description": "fixed"})
            fixed = await _settle(svc, "copies")
            assert fixed is not None and fixed.state == "success"
            assert (fixed.stats["run"], fixed.stats["reused"]) == (1, 1)
            assert (await _tree(svc, "copies"))["out/f2/.files/f2"] == (await _tree(svc, "inputs"))[
                "f2"
            ]
        finally:
            await svc.db.close()

    _run(go())


@pytest.mark.parametrize("every_job", [False, True])
def test_reprocess(fresh_database: Callable[[], str], tmp_path: Path, every_job: bool) -> None:
    dsn = fresh_database()

    async def go() -> None:
        svc = await _services(dsn, tmp_path / "chunks")
        try:
            await svc.control.create_repo("inputs")
            await _write(svc, "inputs", "main", {f"f{i}": b"v1" for i in range(4)})
            spec: dict[str, Any] = {
                "pipeline": {"name": "copies"},
                "input": {"pfs": {"repo": "inputs", "glob": "/*"}},
                "transform": {"cmd": ["true"]},
            }
            if every_job:
                spec["reprocess_spec"] = "every_job"
            await svc.control.pipelines.create(spec)
            await _settle(svc, "copies")
            await _write(svc, "inputs", "main", {"f0": b"v2"})
            # The preview of the next job says what it will do, before it runs.
            current = await svc.control.pipelines.inspect("copies")
            past = await svc.control.jobs.past("copies", current.salt)
            preview = await svc.control.pipeline_planner.plan(current.spec, past, current.salt)
            assert preview.totals == (
                {"datums": 4, "run": 4, "skip": 0, "remove": 1}
                if every_job
                else {"datums": 4, "run": 1, "skip": 3, "remove": 1}
            )
            # f0's old output goes (it changed); with every_job the rest rerun too.
            reasons = sorted(d.reason for d in preview.datums)
            assert reasons == (
                ["content changed", "content changed", "reprocess", "reprocess", "reprocess"]
                if every_job
                else ["content changed", "content changed", "unchanged", "unchanged", "unchanged"]
            )
            job = await _settle(svc, "copies")
            assert job is not None
            assert job.stats["run"] == (4 if every_job else 1)
            await svc.control.pipelines.update("copies", spec, reprocess=True)
            again = await _settle(svc, "copies")
            assert again is not None and again.stats["run"] == 4
            assert again.stats["plan"] == "full"
            assert set(await _tree(svc, "copies")) == {f"out/f{i}/.files/f{i}" for i in range(4)}
        finally:
            await svc.db.close()

    _run(go())


def test_cron_input_ticks_and_each_tick_is_a_datum(
    fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    dsn = fresh_database()

    async def go() -> None:
        svc = await _services(dsn, tmp_path / "chunks")
        try:
            spec = {
                "pipeline": {"name": "ticker"},
                "input": {"cron": {"name": "tick", "spec": "@every 1s", "overwrite": True}},
                "transform": {"cmd": ["true"]},
            }
            await svc.control.pipelines.create(spec)
            assert (await svc.control.get_branch("ticker-tick", "main")).head is None
            seen: list[dict[str, bytes]] = []
            for _ in range(2):
                await asyncio.sleep(1.1)
                await svc.scheduler.tick()  # the tick commit, then its job
                seen.append(await _tree(svc, "ticker-tick"))
                await _work(svc)
                await svc.scheduler.tick()
            # overwrite: one tick file at a time, a new one each second
            assert [len(t) for t in seen] == [1, 1] and seen[0] != seen[1]
            jobs = await svc.control.jobs.list_jobs("ticker", None, None, 10)
            assert [j.state for j in jobs] == ["success", "success"]
            assert [(j.stats["run"], j.stats["removed"]) for j in jobs] == [(1, 1), (1, 0)]
            assert list(await _tree(svc, "ticker")) == [_out_key("/" + k, k) for k in seen[1]]
            await svc.control.pipelines.delete("ticker")
            with pytest.raises(errors.RepoNotFound):
                await svc.control.get_branch("ticker-tick", "main")
        finally:
            await svc.db.close()

    _run(go())


def test_a_diamond_runs_its_join_once_per_input_change(
    fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    """src -> aaa -> bbb, and ccc reads both: one change to src runs ccc once,
    after bbb, with both new outputs (not once with aaa's new output and bbb's old)."""
    dsn = fresh_database()

    async def go() -> None:
        svc = await _services(dsn, tmp_path / "chunks")
        try:
            await svc.control.create_repo("src")
            await _write(svc, "src", "main", {"x": b"1"})
            for name, input_ in (
                ("aaa", {"pfs": {"repo": "src", "glob": "/*"}}),
                ("bbb", {"pfs": {"repo": "aaa", "glob": "/"}}),
                (
                    "ccc",
                    {
                        "cross": [
                            {"pfs": {"repo": "aaa", "glob": "/"}},
                            {"pfs": {"repo": "bbb", "glob": "/"}},
                        ]
                    },
                ),
            ):
                spec = {"pipeline": {"name": name}, "input": input_, "transform": {"cmd": ["true"]}}
                await svc.control.pipelines.create(spec)

            async def drain() -> None:
                for _ in range(50):
                    await svc.scheduler.tick()
                    ran = await _work(svc)
                    active = await svc.db.jobs.active_jobs()
                    if not ran and not active:
                        await svc.scheduler.tick()
                        if not await svc.db.jobs.active_jobs():
                            return
                raise AssertionError("the DAG never settled")

            await drain()
            await _write(svc, "src", "main", {"y": b"2"})
            await drain()
            jobs = await svc.control.jobs.list_jobs("ccc", None, None, 10)
            assert [j.state for j in jobs] == ["success", "success"]
            newest = jobs[0]
            b_head = (await svc.control.get_branch("bbb", "main")).head
            assert b_head is not None
            assert {i.repo: i.commit for i in newest.inputs}["bbb"] == b_head.hex()
        finally:
            await svc.db.close()

    _run(go())


queue_ops = st.lists(
    st.tuples(
        st.sampled_from(["lease", "fail", "release", "succeed"]),
        st.integers(0, 1),  # which gateway
        st.integers(1, 4),  # lease limit
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=queue_ops)
# Gateway 0 puts a datum back below gateway 1's floor.
@example(ops=[("lease", 0, 2), ("lease", 1, 2), ("fail", 0, 1)])
def test_two_gateways_lease_every_pending_datum_whatever_goes_back(
    fresh_database: Callable[[], str], tmp_path: Path, ops: list[tuple[str, int, int]]
) -> None:
    """Each gateway scans the queue from its own floor; datums put back below
    it (by itself or by the other gateway) are still leased: a lease always
    returns min(limit, pending) datums, and each pending datum exactly once."""
    dsn = fresh_database()

    async def go() -> None:
        gateways = [await _services(dsn, tmp_path / "chunks") for _ in range(2)]
        a = gateways[0]
        try:
            await a.control.create_repo("inputs")
            await _write(a, "inputs", "main", {f"f{i}": b"v" for i in range(8)})
            spec = {
                "pipeline": {"name": "queue"},
                "input": {"pfs": {"repo": "inputs", "glob": "/*"}},
                "transform": {"cmd": ["true"]},
                "datum_tries": 1000,
            }
            await a.control.pipelines.create(spec)
            job = await a.control.jobs.maybe_start(await a.control.pipelines.inspect("queue"))
            assert job is not None
            held: list[list[str]] = [[], []]
            for op, gw, limit in ops:
                jobs = gateways[gw].control.jobs
                pending = (await jobs.counts(job.id)).get("pending", 0)
                if op == "lease":
                    leases = await jobs.lease(f"w{gw}", limit)
                    assert len(leases) == min(limit, pending)
                    held[gw] += [lease["attempt"] for lease in leases]
                elif held[gw] and op in ("fail", "succeed"):
                    outcome = "failed" if op == "fail" else "success"
                    await jobs.complete(f"w{gw}", Completion(held[gw].pop(0), outcome, 1))
                elif held[gw]:
                    rows = await jobs.db.jobs.release([held[gw].pop()])
                    jobs._requeued(rows.values())
            # Drain through gateway 1, then 0: every datum ends leased once.
            for gw in (1, 0):
                jobs = gateways[gw].control.jobs
                pending = (await jobs.counts(job.id)).get("pending", 0)
                leases = await jobs.lease(f"w{gw}", 100)
                assert len(leases) == pending
                assert len({lease["attempt"] for lease in leases}) == pending
            assert (await a.control.jobs.counts(job.id)).get("pending", 0) == 0
        finally:
            for svc in gateways:
                await svc.db.close()

    _run(go())
