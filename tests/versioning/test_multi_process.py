"""Several servers on one database, in-process: each `Versioning` (or
`Services`) opened on its own `Database` stands for one `loxo serve`, with
caches of its own. What one does must be seen by the others at once
(docs/design/multi-gateway.md); the end-to-end twin is
tests/e2e/test_multi_gateway.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from versioning import errors, services
from versioning.chunkstore.local import LocalChunkStore
from versioning.db import Database
from versioning.db.leader import Leadership
from versioning.ids import CommitId
from versioning.pipelines.scheduler import Scheduler
from versioning.pipelines.spec import Cron
from versioning.repository import Versioning
from versioning.views import ObjectAttrs, View, new_entry

ATTRS = ObjectAttrs("text/plain", {}, {})


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    yield data


@contextlib.asynccontextmanager
async def server(dsn: str, chunks: Path) -> AsyncIterator[services.Services]:
    db = await Database.connect(dsn, min_size=1, max_size=8)
    try:
        yield services.build(db, LocalChunkStore(chunks))
    finally:
        await db.close()


async def _put(svc: Versioning, repo: str, key: str, body: bytes) -> CommitId | None:
    """What PutObject does: the branch by write_target (trusting a recent
    sighting), the body, then the commit."""
    branch = await svc.write_target(repo, None)
    view = await svc.branch_view(repo, branch)
    content, result = await svc.store_content(_pieces(body))
    entry = new_entry(content, result.size, result.md5.hex(), ATTRS)
    return await svc.commit(view, {key: entry}, f"put {key}", {"op": "test"})


async def _read(svc: Versioning, repo: str, key: str) -> bytes:
    view = await svc.branch_view(repo, None)
    reader = await svc.reader(await svc.get_entry(view, key), repo)
    return b"".join([piece async for piece in reader.read()])


def test_a_bucket_made_or_dropped_on_one_server_is_seen_by_the_other(
    fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    dsn = fresh_database()

    async def scenario() -> None:
        async with server(dsn, tmp_path / "c") as a, server(dsn, tmp_path / "c") as b:
            va, vb = a.versioning, b.versioning
            await va.branches.create_repo("shared")
            # Created on a, written on b at once; read back on a at once.
            first = await _put(vb, "shared", "k", b"one")
            assert await _read(va, "shared", "k") == b"one"
            assert (await va.branch_view("shared", None)).commit == first
            # b now trusts its sighting of shared@main and caches the default
            # branch. a deletes the repo and re-creates it with a `dev` branch
            # from b's side: b must not think the old repo is still there.
            await va.branches.delete_repo("shared")
            await vb.branches.ensure_branch("shared", "dev")
            assert [x.name for x in await va.branches.list_branches("shared")] == ["dev", "main"]
            assert (await va.branch_view("shared", "main")).commit is None
            # A snapshot read of the old repo's commit, through the new repo:
            # b cached that commit, but it is not the new repo's.
            assert first is not None
            with pytest.raises(errors.NotFound):
                await vb.snapshot_view("shared", first.hex())

            # A branch b saw is deleted by a, and its name becomes a tag: b's
            # write answers what a write that looked the name up would.
            await va.branches.create_branch("shared", "feature", lambda: _none())
            await _put(vb, "shared", "seed", b"x")
            await vb.write_target("shared", "feature")  # b has seen it now
            await va.branches.delete_branch(
                "shared", "feature", only_if_empty=False, may_drop_repo=False
            )
            view = await vb.branch_view("shared", "main")
            assert view.commit is not None
            await a.control.create_tag("shared", "feature", view.commit.hex())
            target = await vb.write_target("shared", "feature")  # trusted sighting
            content, result = await vb.store_content(_pieces(b"y"))
            entry = new_entry(content, result.size, result.md5.hex(), ATTRS)
            with pytest.raises(errors.ReadOnlyRef):
                await vb.commit(View("shared", target, None, None), {"k": entry}, "m", {})
            # And plainly deleted: BranchNotFound, not a write.
            await va.branches.create_branch("shared", "gone", lambda: _none())
            await vb.write_target("shared", "gone")
            await va.branches.delete_branch(
                "shared", "gone", only_if_empty=False, may_drop_repo=False
            )
            with pytest.raises(errors.BranchNotFound):
                await vb.commit(View("shared", "gone", None, None), {"k": entry}, "m", {})

    asyncio.run(scenario())


async def _none() -> CommitId | None:
    return None


def test_a_purge_through_one_server_is_enforced_by_the_others_when_it_answers(
    fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    dsn = fresh_database()

    async def scenario() -> None:
        async with server(dsn, tmp_path / "c") as a, server(dsn, tmp_path / "c") as b:
            va, vb = a.versioning, b.versioning
            await va.branches.create_repo("secrets")
            await _put(va, "secrets", "pw", b"hunter2")
            assert await _read(vb, "secrets", "pw") == b"hunter2"  # b's table is fresh
            await va.purges.purge("secrets", "pw", "leaked", "test")
            with pytest.raises(errors.ContentPurged):
                await _read(vb, "secrets", "pw")
            with pytest.raises(errors.ContentPurged):
                await _put(vb, "secrets", "again", b"hunter2")
            # The repo goes and comes back (through a): b's table still lists
            # the purge, but the new repo may hold those bytes.
            await va.branches.delete_repo("secrets")
            await va.branches.create_repo("secrets")
            await _put(vb, "secrets", "pw", b"hunter2")
            assert await _read(vb, "secrets", "pw") == b"hunter2"

    asyncio.run(scenario())


def test_committers_of_two_servers_take_turns_and_keep_one_chain(
    fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    """Two servers hammering one branch: every write lands once, on one chain,
    and the one that lost a race commits in turns afterwards."""
    dsn = fresh_database()

    async def scenario() -> None:
        async with server(dsn, tmp_path / "c") as a, server(dsn, tmp_path / "c") as b:
            va, vb = a.versioning, b.versioning
            await va.branches.create_repo("busy")
            turns = {"a": 0, "b": 0}
            for name, svc in (("a", va), ("b", vb)):
                writer = svc.db.writer
                original = writer.turn

                def counting(
                    repo: str, branch: str, name: str = name, original: object = original
                ) -> contextlib.AbstractAsyncContextManager[None]:
                    turns[name] += 1
                    return original(repo, branch)  # type: ignore[operator,no-any-return]

                writer.turn = counting  # type: ignore[method-assign,assignment]
            writes = [
                _put(svc, "busy", f"{name}/{i:03d}", f"{name}{i}".encode())
                for i in range(150)
                for name, svc in (("a", va), ("b", vb))
            ]
            commits = await asyncio.gather(*writes)
            assert None not in commits and len(set(commits)) == 300
            head = (await va.branches.get_branch("busy", "main")).head
            chain: list[CommitId] = []
            while head is not None:
                chain.append(head)
                parents = (await va.db.objects.get_commit(head)).parents
                assert len(parents) <= 1
                head = parents[0] if parents else None
            assert set(chain) == set(commits)
            lost = va.committer.conflicts + vb.committer.conflicts
            # Every lost race was retried in turn (and, for a moment after,
            # that server's next batches took turns from the start).
            assert turns["a"] + turns["b"] >= lost

    asyncio.run(scenario())


def test_one_leader_among_servers_and_a_follower_takes_over(
    fresh_database: Callable[[], str],
) -> None:
    dsn = fresh_database()

    async def scenario() -> None:
        one = Leadership(dsn, key=0x5445_5354, check_seconds=0)
        two = Leadership(dsn, key=0x5445_5354, check_seconds=0)
        try:
            assert await one.is_leader()
            assert not await two.is_leader()
            assert await one.is_leader()  # still: its session holds the lock
            await one.close()  # a leader that stops
            assert await two.is_leader()
            # A leader whose session dies (as with kill -9, or a database
            # restart) notices at its next check; another takes over.
            three = Leadership(dsn, key=0x5445_5354, check_seconds=0)
            assert not await three.is_leader()
            admin = await asyncpg.connect(dsn)
            try:
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'loxo-leader' AND datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                )
            finally:
                await admin.close()
            for _ in range(50):
                if await three.is_leader():
                    break
                await asyncio.sleep(0.05)
            assert await three.is_leader()
            assert not await two.is_leader()
            await three.close()
        finally:
            await one.close()
            await two.close()
        # Without a DSN a server cannot take part in an election: it leads.
        assert await Leadership(None).is_leader()

    asyncio.run(scenario())


def test_only_the_leader_runs_the_scheduler_and_a_tick_commits_once(
    fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    dsn = fresh_database()

    async def scenario() -> None:
        async with server(dsn, tmp_path / "c") as a, server(dsn, tmp_path / "c") as b:
            ticks = {"a": 0, "b": 0}
            loops = []
            for name, svc in (("a", a), ("b", b)):
                sched: Scheduler = svc.scheduler

                async def count(name: str = name) -> None:
                    ticks[name] += 1

                sched.tick = count  # type: ignore[method-assign]
                sched.interval = 0.02
                loops.append(asyncio.create_task(sched.run()))
            await asyncio.sleep(0.5)
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            assert sorted(ticks.values())[0] == 0 and sorted(ticks.values())[1] > 0, ticks

            # Two leaders for a moment both commit the same cron tick: one commit.
            await a.versioning.branches.create_repo("every-tick")
            cron = Cron(name="tick", spec="@every 1s", overwrite=True)
            at = 1_700_000_000_000_000
            await asyncio.gather(
                a.scheduler._tick("every-tick", cron, at),
                b.scheduler._tick("every-tick", cron, at),
            )
            await a.scheduler._tick("every-tick", cron, at)  # late, after the fact
            head = (await a.versioning.branches.get_branch("every-tick", "main")).head
            assert head is not None
            commit = await a.versioning.db.objects.get_commit(head)
            assert commit.parents == ()
            view = await a.versioning.branch_view("every-tick", None)
            assert [k async for k, _ in a.versioning.iterate(view)] == ["2023-11-14T22:13:20Z"]

    asyncio.run(scenario())
