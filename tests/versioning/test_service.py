"""The versioning service against a real PostgreSQL: commits, heads, migrations.

Two Versioning instances on one database stand in for two server processes:
each has its own committer, so their writes to one branch race on the
compare-and-set of the head and must rebase instead of losing updates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from versioning import errors, tree
from versioning.chunkstore.local import LocalChunkStore
from versioning.committer import Change
from versioning.db import Database
from versioning.ids import CommitId, short_hash
from versioning.migrations import SchemaTooNew, apply_all, available
from versioning.model import Commit, ObjectEntry
from versioning.repository import Versioning
from versioning.views import ObjectAttrs, new_entry

ATTRS = ObjectAttrs("text/plain", {}, {})


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 1000):
        yield data[i : i + 1000]


async def _service(dsn: str, chunks: Path) -> Versioning:
    meta = await Database.connect(dsn, min_size=1, max_size=5)
    return Versioning(meta, LocalChunkStore(chunks))


@contextlib.asynccontextmanager
async def service(dsn: str, chunks: Path) -> AsyncIterator[Versioning]:
    svc = await _service(dsn, chunks)
    try:
        yield svc
    finally:
        await svc.db.close()


async def _put(svc: Versioning, repo: str, key: str, body: bytes) -> CommitId | None:
    view = await svc.branch_view(repo, "main")
    content, result = await svc.store_content(_pieces(body))
    entry = new_entry(content, result.size, result.md5.hex(), ATTRS)
    return await svc.commit(view, {key: entry}, f"put {key}", {"op": "test"})


async def _chain(svc: Versioning, head: CommitId | None) -> list[Commit]:
    out = []
    while head is not None:
        commit = await svc.db.objects.get_commit(head)
        out.append(commit)
        head = commit.parents[0] if commit.parents else None
    return out


def test_two_committers_never_lose_an_update(
    fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    dsn = fresh_database()

    async def scenario() -> None:
        a = await _service(dsn, tmp_path / "chunks")
        b = await _service(dsn, tmp_path / "chunks")
        try:
            await a.branches.create_repo("race")
            expected: list[str] = []
            # Rounds until the race has forced at least one rebase (a lost
            # compare-and-set), checking the invariants after every round.
            for round_no in range(8):
                writes = [
                    _put(svc, "race", f"{round_no}/{name}/{i:03d}", f"{name}{i}".encode())
                    for i in range(60)
                    for name, svc in (("a", a), ("b", b))
                ]
                expected += [f"{round_no}/{n}/{i:03d}" for n in "ab" for i in range(60)]
                commits = await asyncio.gather(*writes)
                assert len(set(commits)) == 120 and None not in commits
                head = (await a.branches.get_branch("race", "main")).head
                chain = await _chain(a, head)
                # Linear history holding every write exactly once.
                assert len(chain) == len(expected)
                assert set(commits) <= {c.id for c in chain}
                view = await b.branch_view("race", "main")
                assert [k async for k, _ in b.iterate(view)] == sorted(expected)
                # Each commit's tree holds one more object than its parent's.
                counts = [(await tree.stats(a.db.objects, c.tree))[0] for c in reversed(chain)]  # type: ignore[arg-type]
                assert counts == list(range(1, len(expected) + 1))
                if a.committer.conflicts + b.committer.conflicts:
                    break
            assert a.committer.conflicts + b.committer.conflicts > 0, "no rebase ever happened"
        finally:
            await a.db.close()
            await b.db.close()

    asyncio.run(scenario())


def test_failed_precondition_fails_only_its_own_change(
    fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    dsn = fresh_database()

    async def scenario() -> None:
        async with service(dsn, tmp_path / "chunks") as svc:
            await svc.branches.create_repo("cond")
            view = await svc.branch_view("cond", "main")
            content, result = await svc.store_content(_pieces(b"x"))
            entry = new_entry(content, 1, result.md5.hex(), ATTRS)

            async def refuse(src: tree.NodeSource, root: tree.Root) -> None:
                raise errors.PreconditionFailed("no")

            ok1 = svc.commit(view, {"one": entry}, "m", {})
            bad = svc.commit(view, {"two": entry}, "m", {}, check=refuse)
            ok2 = svc.commit(view, {"three": entry}, "m", {})
            results = await asyncio.gather(ok1, bad, ok2, return_exceptions=True)
            assert isinstance(results[1], errors.PreconditionFailed)
            assert results[0] is not None and results[2] is not None
            view = await svc.branch_view("cond", "main")
            assert [k async for k, _ in svc.iterate(view)] == ["one", "three"]

    asyncio.run(scenario())


def test_no_op_delete_makes_no_commit_and_branch_rules(
    fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    dsn = fresh_database()

    async def scenario() -> None:
        async with service(dsn, tmp_path / "chunks") as svc:
            await svc.branches.create_repo("rules")
            view = await svc.branch_view("rules", "main")
            assert await svc.commit(view, {"absent": None}, "rm", {}) is None
            first = await _put(svc, "rules", "k", b"data")
            # A branch starts at the default branch's head.
            branch = await svc.branches.ensure_branch("rules", "dev")
            assert branch.head == first
            with pytest.raises(errors.BranchExists):
                await svc.branches.ensure_branch("rules", "dev")
            with pytest.raises(errors.InvalidName):
                await svc.branches.ensure_branch("rules", "0123456789abcdef0123456789abcdef")
            with pytest.raises(errors.BranchNotEmpty):
                await svc.branches.delete_branch(
                    "rules", "dev", only_if_empty=True, may_drop_repo=True
                )
            view = await svc.branch_view("rules", "dev")
            await svc.commit(view, {"k": None}, "rm", {})
            await svc.branches.delete_branch("rules", "dev", only_if_empty=True, may_drop_repo=True)
            with pytest.raises(errors.BranchNotFound):
                await svc.branches.get_branch("rules", "dev")
            # Snapshots are read-only.
            assert first is not None
            snap = await svc.snapshot_view("rules", first.hex())
            with pytest.raises(errors.ReadOnlyRef):
                await svc.commit(snap, {"x": None}, "m", {})
            # Deleting the last branch deletes the repo.
            view = await svc.branch_view("rules", "main")
            await svc.commit(view, {"k": None}, "rm", {})
            await svc.branches.delete_branch(
                "rules", "main", only_if_empty=True, may_drop_repo=True
            )
            with pytest.raises(errors.RepoNotFound):
                await svc.branches.get_repo("rules")

    asyncio.run(scenario())


def test_commit_ids_are_content_addressed(
    fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    dsn = fresh_database()

    async def scenario() -> None:
        async with service(dsn, tmp_path / "chunks") as svc:
            await svc.branches.create_repo("ids")
            commit_id = await _put(svc, "ids", "k", b"v")
            assert commit_id is not None
            row = await svc.db.pool.fetchrow("SELECT data FROM commits WHERE id = $1", commit_id)
            assert short_hash(row["data"]) == commit_id
            commit = Commit.decode(row["data"])
            assert commit.encode() == row["data"] and commit.id == commit_id
            assert commit.origin["repo"] == "ids" and commit.parents == ()
            entry = await svc.get_entry(await svc.branch_view("ids", "main"), "k")
            assert isinstance(entry, ObjectEntry)
            # The entry records the commit that wrote it, and its time.
            assert await svc.commit_of(entry) == commit_id
            assert entry.last_modified == commit.time

    asyncio.run(scenario())


def test_migrations_are_idempotent_and_refuse_a_newer_schema(
    fresh_database: Callable[[], str],
) -> None:
    dsn = fresh_database()

    async def scenario() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            assert await apply_all(conn) == [m.version for m in available()]
            assert await apply_all(conn) == []
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'x')")
            with pytest.raises(SchemaTooNew):
                await apply_all(conn)
        finally:
            await conn.close()

    asyncio.run(scenario())


def test_outcomes_on_a_stale_cached_head_are_judged_again(
    fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    """A committer guesses the head it last wrote. When another process moved
    the head since, a delete that looks like a no-op on the old tree must not
    be answered "nothing to delete": the key exists on the current head."""
    dsn = fresh_database()

    async def scenario() -> None:
        async with (
            service(dsn, tmp_path / "chunks") as a,
            service(dsn, tmp_path / "chunks") as b,
        ):
            await a.branches.create_repo("stale")
            await _put(a, "stale", "seed", b"1")  # a now caches the head it wrote
            await _put(b, "stale", "k", b"2")  # b moves the head behind a's back
            view = await a.branch_view("stale", "main")
            commit = await a.commit(view, {"k": None}, "rm k", {})
            assert commit is not None, "the delete was judged on a stale head"
            view = await b.branch_view("stale", "main")
            assert [k async for k, _ in b.iterate(view)] == ["seed"]
            # And a failed precondition is judged on the current head too.
            await _put(b, "stale", "k2", b"3")

            async def must_be_absent(src: tree.NodeSource, root: tree.Root) -> None:
                if await tree.lookup(src, root, "k2") is not None:
                    raise errors.PreconditionFailed("k2 exists")

            with pytest.raises(errors.PreconditionFailed):
                await a.commit(view, {"k2": None}, "m", {}, check=must_be_absent)

    asyncio.run(scenario())


def test_completions_of_one_upload_in_one_batch_commit_once(
    fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    """Concurrent CompleteMultipartUploads of one upload land in one committer
    batch; the first consumes the upload, the rest must get UploadNotFound
    (they used to make the whole batch's compare-and-set fail forever)."""
    dsn = fresh_database()

    async def scenario() -> None:
        async with service(dsn, tmp_path / "chunks") as svc:
            await svc.branches.create_repo("mpu")
            view = await svc.branch_view("mpu", "main")
            upload_id = await svc.uploads.create(view, "k", ATTRS)
            upload = await svc.uploads.get(view, "k", upload_id)
            content, result = await svc.store_content(_pieces(b"part"))
            await svc.uploads.put_part(upload, 1, content, result.size, result.md5)
            entry = new_entry(content, result.size, result.md5.hex(), ATTRS)
            # Submitted in one loop iteration, so the committer takes them as one batch.
            outcomes = await asyncio.gather(
                *(
                    svc.committer.submit(
                        "mpu",
                        "main",
                        Change({"k": entry}, "m", "loxo", {}, consume_upload=upload_id),
                    )
                    for _ in range(4)
                ),
                return_exceptions=True,
            )
            winners = [o for o in outcomes if not isinstance(o, BaseException)]
            assert len(winners) == 1, outcomes
            assert all(
                isinstance(o, errors.UploadNotFound) for o in outcomes if o not in winners
            ), outcomes

    asyncio.run(scenario())
