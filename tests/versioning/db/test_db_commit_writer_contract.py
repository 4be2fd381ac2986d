"""CommitWriter contract: a chain of commits and the head move are one
compare-and-set. It applies whole (commits, nodes, contents, versions,
histories, withdrawals, consumed uploads and open commits) or not at all."""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.versioning.db.harness import (
    Backend,
    Chain,
    Stores,
    commit,
    manifest_of,
    new_repo,
    open_record,
    upload_record,
)
from versioning import errors
from versioning.ids import ContentId, NodeId


async def assert_written(db: Stores, chain: Chain) -> None:
    for c in chain.commits:
        assert await db.objects.get_commit(c.id, repo=chain.repo) == c
    for nid, node in chain.nodes.items():
        assert await db.objects.get_node(nid) == node
    for m in chain.contents:
        assert await db.objects.get_manifest(m.id) == m
    for version, made_by in chain.versions:
        assert await db.objects.commit_of_version(version) == made_by
    for commit_id, root, generation in chain.histories:
        assert await db.objects.get_history(commit_id) == (root, generation)


async def unstored_nodes(backend: Backend, chain: Chain) -> set[NodeId]:
    """The chain's nodes not stored yet. A chain carries every node its trees
    may need, and a re-chunked run of old entries is a node stored already
    (history keys hold commit ids, so where runs split varies by run)."""
    absent = set()
    async with backend.stores() as fresh:
        for nid in chain.nodes:
            try:
                await fresh.objects.get_node(nid)
            except errors.CorruptData:
                absent.add(nid)
    assert absent  # at least the leaves holding the new entries
    return absent


async def assert_not_written(db: Stores, chain: Chain, unstored: set[NodeId]) -> None:
    """Nothing of `chain` stored (`unstored`: its nodes not stored before)."""
    for c in chain.commits:
        with pytest.raises(errors.CommitNotFound):
            await db.objects.get_commit(c.id)
        assert await db.objects.get_history(c.id) == (None, 0)
    for nid in unstored:
        with pytest.raises(errors.CorruptData):
            await db.objects.get_node(nid)
    for m in chain.contents:
        with pytest.raises(errors.CorruptData):
            await db.objects.get_manifest(m.id)
    for version, _ in chain.versions:
        assert await db.objects.commit_of_version(version) is None


def body() -> bytes:
    return os.urandom(24)  # new contents, new nodes: nothing already stored


def test_a_chain_applies_when_the_head_is_still_old_head(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        chain = await Chain.on(db, repo, "main")
        first = await chain.add({"a": body(), "b": body()})
        await chain.add({"a": None, "c": body()})
        last = await chain.add({"d/e": body()})
        assert chain.commits[1].parents == (first.id,)
        assert await db.writer.commit_chain(chain.write())
        assert (await db.refs.get_branch(repo, "main")).head == last.id
        async with backend.stores() as fresh:
            await assert_written(fresh, chain)
        await assert_written(db, chain)
        # The next chain builds on it.
        more = await Chain.on(db, repo, "main")
        await more.add({"f": body()})
        assert await db.writer.commit_chain(more.write())

    backend.run(scenario)


def test_a_stale_old_head_writes_nothing(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        await db.refs.create_branch_at(repo, "empty", None)
        stale_empty = await Chain.on(db, repo, "main")  # built on an empty main
        await stale_empty.add({"a": body()})
        winner = await commit(db, repo, "main", {"w": body()})
        stale = await Chain.on(db, repo, "main", winner.id)
        await stale.add({"b": body()})
        await stale.add({"c": body()})
        await commit(db, repo, "main", {"w": body()})  # moves main past `stale`'s base
        head = (await db.refs.get_branch(repo, "main")).head
        unstored = {id(c): await unstored_nodes(backend, c) for c in (stale_empty, stale)}

        assert not await db.writer.commit_chain(stale_empty.write())
        assert not await db.writer.commit_chain(stale.write())
        # Expecting a head on an empty branch, or any head of a missing one.
        assert not await db.writer.commit_chain(stale.write(branch="empty"))
        assert not await db.writer.commit_chain(stale.write(branch="nope"))
        assert (await db.refs.get_branch(repo, "main")).head == head
        assert (await db.refs.get_branch(repo, "empty")).head is None
        for chain in (stale_empty, stale):
            await assert_not_written(db, chain, unstored[id(chain)])
            async with backend.stores() as fresh:
                await assert_not_written(fresh, chain, unstored[id(chain)])

    backend.run(scenario)


def test_of_two_writes_on_one_head_exactly_one_applies(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        base = await commit(db, repo, "main", {"k": body()})
        async with backend.stores() as other_server:
            chains = []
            for handle in (db, other_server, db, other_server):
                chain = await Chain.on(handle, repo, "main", base.id)
                await chain.add({"k": body()})
                chains.append(chain)
            unstored = [await unstored_nodes(backend, c) for c in chains]
            results = await asyncio.gather(*(c.db.writer.commit_chain(c.write()) for c in chains))
            assert sorted(results) == [False, False, False, True]
            won = chains[results.index(True)]
            assert (await db.refs.get_branch(repo, "main")).head == won.head
            for chain, absent, applied in zip(chains, unstored, results, strict=True):
                if not applied:
                    await assert_not_written(other_server, chain, absent)

    backend.run(scenario)


def test_consuming_an_upload_records_its_completion_once(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        up = upload_record(repo, "main", "big")
        await db.uploads.create_upload(up)
        first = await Chain.on(db, repo, "main")
        done = await first.add({"big": body()})
        assert await db.writer.commit_chain(first.write(consume_uploads=[(up.id, done.id)]))
        with pytest.raises(errors.UploadNotFound):
            await db.uploads.get_upload(up.id)
        completion = await db.uploads.get_completion(up.id)
        assert completion is not None
        assert (completion.repo, completion.branch, completion.key, completion.commit) == (
            repo,
            "main",
            "big",
            done.id,
        )

        # A second completion, on the current head, finds the upload gone.
        second = await Chain.on(db, repo, "main")
        again = await second.add({"big": body()})
        unstored = await unstored_nodes(backend, second)
        assert not await db.writer.commit_chain(second.write(consume_uploads=[(up.id, again.id)]))
        assert (await db.refs.get_branch(repo, "main")).head == done.id
        await assert_not_written(db, second, unstored)
        assert await db.uploads.get_completion(up.id) == completion

    backend.run(scenario)


def test_a_failed_write_consumes_no_upload(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        up = upload_record(repo, "main", "big")
        await db.uploads.create_upload(up)
        stale = await Chain.on(db, repo, "main")
        made = await stale.add({"big": body()})
        await commit(db, repo, "main", {"other": body()})
        assert not await db.writer.commit_chain(stale.write(consume_uploads=[(up.id, made.id)]))
        assert await db.uploads.get_upload(up.id) == up
        assert await db.uploads.get_completion(up.id) is None

    backend.run(scenario)


def test_referenced_content_must_still_exist(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        kept = manifest_of(body())
        await db.objects.put_content(kept)
        chain = await Chain.on(db, repo, "main")
        await chain.add({"copy": body()})
        gone = ContentId(os.urandom(16))
        unstored = await unstored_nodes(backend, chain)
        with pytest.raises(errors.ContentGone):
            await db.writer.commit_chain(chain.write(referenced=[kept.id, gone]))
        assert (await db.refs.get_branch(repo, "main")).head is None
        await assert_not_written(db, chain, unstored)
        # Referenced contents that exist (or that the write brings) are fine.
        brought = chain.contents[0].id
        assert await db.writer.commit_chain(chain.write(referenced=[kept.id, brought]))
        await assert_written(db, chain)

    backend.run(scenario)


def test_withdrawals_are_written_only_with_the_chain(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        old = await commit(db, repo, "main", {"k": body()})
        stale = await Chain.on(db, repo, "main")
        await stale.add({"k": None})
        await commit(db, repo, "main", {"other": body()})
        assert not await db.writer.commit_chain(stale.write(withdraw=[("k", old.id)]))
        assert not await db.withdrawn.is_withdrawn(repo, "main", "k", old.id)

        chain = await Chain.on(db, repo, "main")
        deleted = await chain.add({"k": None})
        assert await db.writer.commit_chain(
            chain.write(withdraw=[("k", old.id), ("k", deleted.id)])
        )
        assert sorted(await db.withdrawn.withdrawn_of(repo, "main", "k")) == sorted(
            [("k", old.id), ("k", deleted.id)]
        )

    backend.run(scenario)


def test_consuming_an_open_commit_needs_it_being_finished(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        base = await commit(db, repo, "main", {"k": body()})
        record = open_record(repo, "main", base.id)
        await db.open_commits.create_open_commit(record)
        await commit(db, repo, record.staging, {"k": body()})
        finish = await Chain.on(db, repo, "main")
        await finish.add({"k": body()})
        unstored = await unstored_nodes(backend, finish)
        # Not frozen yet: refused, nothing written.
        assert not await db.writer.commit_chain(finish.write(consume_open=[record.id]))
        await assert_not_written(db, finish, unstored)
        assert await db.open_commits.freeze_open_commit(repo, record.id) is not None
        assert await db.writer.commit_chain(finish.write(consume_open=[record.id]))
        assert await db.open_commits.get_open_commit(repo, record.id) is None
        # Consumed: a second finish is refused.
        again = await Chain.on(db, repo, "main")
        await again.add({"k": body()})
        assert not await db.writer.commit_chain(again.write(consume_open=[record.id]))

    backend.run(scenario)


def test_merge_parents_are_guarded_like_ref_moves(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        await commit(db, repo, "main", {"k": body()})
        await db.refs.create_branch_at(repo, "side", None)
        unnamed = await commit(db, repo, "side", {"s": body()})
        named = await commit(db, repo, "side", {"s": body()})
        async with backend.gc_running():
            merge = await Chain.on(db, repo, "main")
            await merge.add({"s": body()}, extra_parents=(unnamed.id,))
            unstored = await unstored_nodes(backend, merge)
            with pytest.raises(errors.Busy):
                await db.writer.commit_chain(merge.write(extra_parents=[unnamed.id]))
            await assert_not_written(db, merge, unstored)
            merge = await Chain.on(db, repo, "main")
            made = await merge.add({"s": body()}, extra_parents=(named.id,))
            assert await db.writer.commit_chain(merge.write(extra_parents=[named.id]))
        assert made.parents[1] == named.id
        merge = await Chain.on(db, repo, "main")
        await merge.add({"t": body()}, extra_parents=(unnamed.id,))
        assert await db.writer.commit_chain(merge.write(extra_parents=[unnamed.id]))

    backend.run(scenario)
