"""ObjectStore contract: immutable, content-addressed metadata. A value read
is the value written, whichever handle reads it and whatever it cached; a
missing one is absence for commits and histories, corruption for the rest."""

from __future__ import annotations

import os

import pytest

from tests.versioning.db.harness import (
    Backend,
    Chain,
    Stores,
    commit,
    manifest_of,
    new_repo,
)
from versioning import errors
from versioning.ids import ChunkId, CommitId, ContentId, NodeId, VersionId
from versioning.model import ChunkRef, Manifest


def test_get_commit_reads_what_was_written_and_respects_repo(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo, other = await new_repo(db), await new_repo(db)
        c = await commit(db, repo, "main", {"k": b"v"})
        async with backend.stores() as fresh:  # another process: nothing cached
            for handle in (db, fresh):
                assert await handle.objects.get_commit(c.id) == c
                assert await handle.objects.get_commit(c.id, repo=repo) == c
                with pytest.raises(errors.CommitNotFound):
                    await handle.objects.get_commit(c.id, repo=other)
                with pytest.raises(errors.CommitNotFound):
                    await handle.objects.get_commit(CommitId(os.urandom(16)))
                with pytest.raises(errors.CommitNotFound):
                    await handle.objects.get_commit(CommitId(os.urandom(16)), repo=repo)
            # Cached now, and still refused to another repo.
            with pytest.raises(errors.CommitNotFound):
                await fresh.objects.get_commit(c.id, repo=other)

    backend.run(scenario)


def test_commits_with_prefix(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo, other = await new_repo(db), await new_repo(db)
        chain = await Chain.on(db, repo, "main")
        for i in range(40):
            await chain.add({f"k{i}": b"v"})
        assert await db.writer.commit_chain(chain.write())
        theirs = await commit(db, other, "main", {"k": b"v"})
        ids = sorted(c.id for c in chain.commits)

        assert await db.objects.commits_with_prefix(repo, "", 100) == ids
        assert await db.objects.commits_with_prefix(repo, "", 5) == ids[:5]
        target = ids[17]
        for width in (1, 2, 7, 8, 31, 32):
            prefix = target.hex()[:width]
            found = await db.objects.commits_with_prefix(repo, prefix, 100)
            assert found == [i for i in ids if i.hex().startswith(prefix)]
        assert await db.objects.commits_with_prefix(repo, target.hex() + "0", 100) == []
        assert await db.objects.commits_with_prefix(repo, theirs.id.hex(), 100) == []
        assert await db.objects.commits_with_prefix(other, theirs.id.hex()[:4], 100) == [theirs.id]

    backend.run(scenario)


def test_nodes_read_back_and_a_missing_node_is_corruption(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        chain = await Chain.on(db, repo, "main")
        await chain.add({f"key/{i:04d}": b"v" for i in range(300)})
        assert len(chain.nodes) > 2
        assert await db.writer.commit_chain(chain.write())
        missing = [NodeId(os.urandom(16)), NodeId(os.urandom(16))]
        async with backend.stores() as fresh:
            ids = list(chain.nodes)
            await fresh.objects.prefetch_nodes([*ids, *missing])
            await fresh.objects.prefetch_nodes(missing)
            for nid in ids:
                assert await fresh.objects.get_node(nid) == chain.nodes[nid]
            for handle in (db, fresh):
                for nid in missing:
                    with pytest.raises(errors.CorruptData):
                        await handle.objects.get_node(nid)

    backend.run(scenario)


def test_histories(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        chain = await Chain.on(db, repo, "main")
        first = await chain.add({"a": b"1"})
        second = await chain.add({"b": b"2"})
        assert await db.writer.commit_chain(chain.write())
        # A commit written without a history index (made before they existed).
        bare = await Chain.on(db, repo, "main")
        old = await bare.add({"c": b"3"})
        assert await db.writer.commit_chain(bare.write(histories=()))
        async with backend.stores() as fresh:
            for handle in (db, fresh):
                assert await handle.objects.get_history(first.id) == chain.histories[0][1:]
                assert await handle.objects.get_history(second.id) == (chain.histories[1][1], 2)
                assert await handle.objects.get_history(old.id) == (None, 0)
                assert await handle.objects.get_history(CommitId(os.urandom(16))) == (None, 0)

    backend.run(scenario)


def test_contents(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        body = os.urandom(40)
        manifest = manifest_of(body)
        assert await db.objects.put_content(manifest) == manifest.id
        assert await db.objects.put_content(manifest) == manifest.id  # idempotent
        chunked = Manifest((ChunkRef(ChunkId(os.urandom(32)), 100), ChunkRef.of_inline(b"tail")))
        assert await db.objects.put_content(chunked) == chunked.id
        async with backend.stores() as fresh:
            for handle in (db, fresh):
                assert await handle.objects.get_manifest(manifest.id) == manifest
                assert await handle.objects.get_manifest(chunked.id) == chunked
                with pytest.raises(errors.CorruptData):
                    await handle.objects.get_manifest(ContentId(os.urandom(16)))

    backend.run(scenario)


def test_touch_chunks_returns_the_ids_that_had_no_row(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        assert await db.objects.touch_chunks([]) == []
        ids = [ChunkId(os.urandom(32)) for _ in range(6)]
        first = [ChunkRef(i, 10) for i in ids[:4]]
        new = await db.objects.touch_chunks([*reversed(first), first[0], first[2]])
        assert new == sorted(ids[:4])  # sorted, each once
        # Known ones are touched, not reported; duplicates count once.
        again = [ChunkRef(i, 10) for i in (ids[5], ids[1], ids[4], ids[5], ids[3])]
        assert await db.objects.touch_chunks(again) == sorted([ids[4], ids[5]])
        assert await db.objects.touch_chunks([ChunkRef(i, 10) for i in ids]) == []

    backend.run(scenario)


def test_commit_of_version(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        chain = await Chain.on(db, repo, "main")
        first = await chain.add({"a": b"1", "b": b"2"})
        second = await chain.add({"a": b"3"})
        assert await db.writer.commit_chain(chain.write())
        for version, made_by in chain.versions:
            assert made_by in (first.id, second.id)
            assert await db.objects.commit_of_version(version) == made_by
        assert [c for _, c in chain.versions].count(first.id) == 2
        assert await db.objects.commit_of_version(VersionId(os.urandom(16))) is None

    backend.run(scenario)


def test_a_deleted_repos_commits_are_not_served_to_its_successor(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        dropped = await new_repo(db)
        by_repo = await commit(db, dropped, "main", {"k": b"1"})
        await db.objects.get_commit(by_repo.id, repo=dropped)  # cached
        await db.repos.delete_repo(dropped)
        await db.repos.create_repo(dropped, "main")
        with pytest.raises(errors.CommitNotFound):
            await db.objects.get_commit(by_repo.id, repo=dropped)
        with pytest.raises(errors.CommitNotFound):
            await db.objects.get_commit(by_repo.id)

        # A repo dropped with its last branch: the same.
        last = await new_repo(db)
        by_branch = await commit(db, last, "main", {"k": b"2"})
        await db.objects.get_commit(by_branch.id, repo=last)
        assert await db.refs.delete_branch(last, "main", by_branch.id)
        await db.repos.create_repo(last, "main")
        with pytest.raises(errors.CommitNotFound):
            await db.objects.get_commit(by_branch.id, repo=last)

    backend.run(scenario)


def test_no_handle_serves_a_deleted_repos_commits_to_its_successor(backend: Backend) -> None:
    """Another server deletes and re-creates the repo: a commit this handle
    cached is not the new repo's (membership is read from the database)."""

    async def scenario(db: Stores) -> None:
        dropped = await new_repo(db)
        c = await commit(db, dropped, "main", {"k": b"1"})
        await db.objects.get_commit(c.id, repo=dropped)  # this handle caches it
        async with backend.stores() as other:  # another server deletes and re-creates
            await other.repos.delete_repo(dropped)
            await other.repos.create_repo(dropped, "main")
        with pytest.raises(errors.CommitNotFound):
            await db.objects.get_commit(c.id, repo=dropped)

    backend.run(scenario)
