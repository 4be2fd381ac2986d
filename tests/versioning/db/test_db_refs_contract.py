"""RefStore contract: branches and tags, one namespace per repo, moved by
compare-and-set, never pointed at a commit a running gc may sweep."""

from __future__ import annotations

import pytest

from tests.versioning.db.harness import (
    Backend,
    Stores,
    commit,
    new_repo,
    open_record,
    unique,
    upload_record,
)
from versioning import errors


def test_unknown_repo_is_refused(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        missing = unique()
        with pytest.raises(errors.RepoNotFound):
            await db.refs.create_branch_at(missing, "b", None)
        with pytest.raises(errors.RepoNotFound):
            await db.refs.get_branch(missing, "main")
        repo = await new_repo(db)
        c = await commit(db, repo, "main", {"k": b"v"})
        with pytest.raises(errors.RepoNotFound):
            await db.refs.create_tag(missing, "t", c.id)
        with pytest.raises(errors.RepoNotFound):
            await db.refs.delete_tag(missing, "t")

    backend.run(scenario)


def test_create_branch_at_and_get(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        empty = await db.refs.create_branch_at(repo, "empty", None)
        assert (empty.repo, empty.name, empty.head) == (repo, "empty", None)
        c = await commit(db, repo, "main", {"k": b"v"})
        made = await db.refs.create_branch_at(repo, "feature", c.id)
        got = await db.refs.get_branch(repo, "feature")
        assert got == made and got.head == c.id
        with pytest.raises(errors.BranchNotFound):
            await db.refs.get_branch(repo, "nope")

    backend.run(scenario)


def test_branch_and_tag_share_one_namespace(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        c = await commit(db, repo, "main", {"k": b"v"})
        await db.refs.create_branch_at(repo, "dev", c.id)
        await db.refs.create_tag(repo, "v1", c.id)
        with pytest.raises(errors.BranchExists):
            await db.refs.create_branch_at(repo, "dev", None)
        with pytest.raises(errors.BranchExists):
            await db.refs.create_tag(repo, "dev", c.id)
        with pytest.raises(errors.TagExists):
            await db.refs.create_branch_at(repo, "v1", c.id)
        with pytest.raises(errors.TagExists):
            await db.refs.create_tag(repo, "v1", c.id)
        assert await db.refs.get_tag(repo, "dev") is None
        with pytest.raises(errors.BranchNotFound):
            await db.refs.get_branch(repo, "v1")
        # Another repo's names are its own.
        other = await new_repo(db)
        await db.refs.create_branch_at(other, "v1", None)

    backend.run(scenario)


def test_refs_point_only_at_commits_of_their_repo(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo, other = await new_repo(db), await new_repo(db)
        mine = await commit(db, repo, "main", {"k": b"mine"})
        theirs = await commit(db, other, "main", {"k": b"theirs"})
        with pytest.raises(errors.CommitNotFound):
            await db.refs.create_branch_at(repo, "b", theirs.id)
        with pytest.raises(errors.CommitNotFound):
            await db.refs.create_tag(repo, "t", theirs.id)
        with pytest.raises(errors.CommitNotFound):
            await db.refs.reset_branch(repo, "main", theirs.id)
        with pytest.raises(errors.CommitNotFound):
            await db.refs.reset_branch(repo, "main", theirs.id, mine.id)
        assert (await db.refs.get_branch(repo, "main")).head == mine.id
        with pytest.raises(errors.BranchNotFound):
            await db.refs.get_branch(repo, "b")
        assert await db.refs.get_tag(repo, "t") is None

    backend.run(scenario)


def test_reset_branch_is_compare_and_set(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        first = await commit(db, repo, "main", {"k": b"1"})
        second = await commit(db, repo, "main", {"k": b"2"})
        await db.refs.create_branch_at(repo, "b", None)
        # `expected` None means "still empty".
        assert await db.refs.reset_branch(repo, "b", first.id, None)
        assert not await db.refs.reset_branch(repo, "b", second.id, None)
        assert (await db.refs.get_branch(repo, "b")).head == first.id
        # A stale expectation fails and changes nothing.
        assert not await db.refs.reset_branch(repo, "b", second.id, second.id)
        assert (await db.refs.get_branch(repo, "b")).head == first.id
        assert await db.refs.reset_branch(repo, "b", second.id, first.id)
        assert (await db.refs.get_branch(repo, "b")).head == second.id
        # Without `expected` the move is unconditional, backwards too.
        assert await db.refs.reset_branch(repo, "b", first.id)
        assert (await db.refs.get_branch(repo, "b")).head == first.id
        with pytest.raises(errors.BranchNotFound):
            await db.refs.reset_branch(repo, "gone", first.id)
        with pytest.raises(errors.BranchNotFound):
            await db.refs.reset_branch(repo, "gone", first.id, None)

    backend.run(scenario)


def test_while_gc_runs_only_already_named_commits_may_be_pointed_at(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        old = await commit(db, repo, "main", {"k": b"1"})
        tagged = await commit(db, repo, "main", {"k": b"2"})
        await db.refs.create_tag(repo, "v2", tagged.id)
        head = await commit(db, repo, "main", {"k": b"3"})
        await db.refs.create_branch_at(repo, "side", head.id)
        async with backend.gc_running():
            # `old` is named by no ref: gc may not have marked it.
            with pytest.raises(errors.Busy):
                await db.refs.create_branch_at(repo, "x", old.id)
            with pytest.raises(errors.Busy):
                await db.refs.create_tag(repo, "x", old.id)
            with pytest.raises(errors.Busy):
                await db.refs.reset_branch(repo, "side", old.id)
            with pytest.raises(errors.Busy):
                await db.refs.reset_branch(repo, "side", old.id, head.id)
            assert (await db.refs.get_branch(repo, "side")).head == head.id
            with pytest.raises(errors.BranchNotFound):
                await db.refs.get_branch(repo, "x")
            # A branch head or a tag names these: always safe.
            assert (await db.refs.create_branch_at(repo, "y", head.id)).head == head.id
            assert (await db.refs.create_tag(repo, "t3", head.id)).commit == head.id
            assert await db.refs.reset_branch(repo, "side", tagged.id, head.id)
            # Refs to nothing, and commits, need no guard.
            await db.refs.create_branch_at(repo, "empty", None)
            await commit(db, repo, "main", {"k": b"4"})
        assert await db.refs.reset_branch(repo, "side", old.id)
        assert (await db.refs.create_tag(repo, "v1", old.id)).commit == old.id

    backend.run(scenario)


def test_delete_branch_is_compare_and_set(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        first = await commit(db, repo, "main", {"k": b"1"})
        await db.refs.create_branch_at(repo, "b", first.id)
        second = await commit(db, repo, "b", {"k": b"2"})
        assert not await db.refs.delete_branch(repo, "b", first.id)  # stale
        assert not await db.refs.delete_branch(repo, "b", None)
        assert (await db.refs.get_branch(repo, "b")).head == second.id
        assert await db.refs.delete_branch(repo, "b", second.id)
        with pytest.raises(errors.BranchNotFound):
            await db.refs.get_branch(repo, "b")
        assert not await db.refs.delete_branch(repo, "b", second.id)  # gone already
        await db.refs.create_branch_at(repo, "empty", None)
        assert await db.refs.delete_branch(repo, "empty", None)
        assert (await db.repos.get_repo(repo)).name == repo

    backend.run(scenario)


def test_deleting_a_branch_takes_its_uploads_and_open_commits(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        base = await commit(db, repo, "main", {"k": b"1"})
        await db.refs.create_branch_at(repo, "b", base.id)
        gone = upload_record(repo, "b", "key")
        kept = upload_record(repo, "main", "key")
        await db.uploads.create_upload(gone)
        await db.uploads.create_upload(kept)
        opened = open_record(repo, "b", base.id)
        await db.open_commits.create_open_commit(opened)
        assert await db.refs.delete_branch(repo, "b", base.id)
        with pytest.raises(errors.UploadNotFound):
            await db.uploads.get_upload(gone.id)
        assert await db.uploads.get_upload(kept.id) == kept
        assert await db.open_commits.get_open_commit(repo, opened.id) is None
        with pytest.raises(errors.BranchNotFound):
            await db.refs.get_branch(repo, opened.staging)

    backend.run(scenario)


def test_deleting_the_last_visible_branch_drops_the_repo(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        c = await commit(db, repo, "main", {"k": b"1"})
        await db.refs.create_tag(repo, "v1", c.id)
        await db.refs.create_branch_at(repo, "other", c.id)
        # A staging branch does not keep the repo alive.
        await db.open_commits.create_open_commit(open_record(repo, "main", c.id))
        assert await db.refs.delete_branch(repo, "main", c.id)
        assert (await db.repos.get_repo(repo)).name == repo
        assert await db.refs.delete_branch(repo, "other", c.id)
        with pytest.raises(errors.RepoNotFound):
            await db.repos.get_repo(repo)
        with pytest.raises(errors.RepoNotFound):
            await db.refs.get_branch(repo, "main")
        assert await db.refs.list_branches(repo) == []
        with pytest.raises(errors.CommitNotFound):
            await db.objects.get_commit(c.id)
        # The name is free again, and the new repo starts empty.
        await db.repos.create_repo(repo, "main")
        assert (await db.refs.get_branch(repo, "main")).head is None
        assert await db.refs.get_tag(repo, "v1") is None

    backend.run(scenario)


def test_list_branches_in_byte_order_without_staging_branches(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db, default_branch="main")
        c = await commit(db, repo, "main", {"k": b"1"})
        names = ["alpha", "Beta", "gamma", "Ωmega", "éclair", "Zulu", "beta"]
        for name in names:
            await db.refs.create_branch_at(repo, name, c.id)
        opened = open_record(repo, "main", c.id)
        await db.open_commits.create_open_commit(opened)
        assert (await db.refs.get_branch(repo, opened.staging)).head == c.id
        expected = sorted([*names, "main"], key=lambda n: n.encode())
        listed = await db.refs.list_branches(repo)
        assert [b.name for b in listed] == expected
        assert all(b.repo == repo and b.head == c.id for b in listed)
        # Paging: names after `after`, at most `limit`.
        page = await db.refs.list_branches(repo, after="Zulu", limit=3)
        assert [b.name for b in page] == expected[expected.index("Zulu") + 1 :][:3]
        assert await db.refs.list_branches(repo, after=expected[-1]) == []

    backend.run(scenario)


def test_list_branches_of_every_repo_in_repo_then_name_order(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        tag = unique("x")
        repos = [f"{tag}-b", f"{tag}-a"]
        for repo in repos:
            await db.repos.create_repo(repo, "main")
            await db.refs.create_branch_at(repo, "dev", None)
        listed = [(b.repo, b.name) for b in await db.refs.list_branches() if b.repo in repos]
        assert listed == [
            (f"{tag}-a", "dev"),
            (f"{tag}-a", "main"),
            (f"{tag}-b", "dev"),
            (f"{tag}-b", "main"),
        ]

    backend.run(scenario)


def test_tags(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        c1 = await commit(db, repo, "main", {"k": b"1"})
        c2 = await commit(db, repo, "main", {"k": b"2"})
        made = await db.refs.create_tag(repo, "v1", c1.id)
        assert (made.repo, made.name, made.commit) == (repo, "v1", c1.id)
        assert await db.refs.get_tag(repo, "v1") == made
        assert await db.refs.get_tag(repo, "nope") is None
        names = ["b", "A", "a", "é", "Z"]
        for name in names:
            await db.refs.create_tag(repo, name, c2.id)
        expected = sorted([*names, "v1"], key=lambda n: n.encode())
        assert [t.name for t in await db.refs.list_tags(repo, "", 100)] == expected
        assert [t.name for t in await db.refs.list_tags(repo, "Z", 2)] == expected[2:4]
        await db.refs.delete_tag(repo, "v1")
        assert await db.refs.get_tag(repo, "v1") is None
        with pytest.raises(errors.TagNotFound):
            await db.refs.delete_tag(repo, "v1")
        # Deleting a tag frees its name for a branch.
        await db.refs.create_branch_at(repo, "v1", c1.id)

    backend.run(scenario)
