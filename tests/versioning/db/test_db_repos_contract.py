"""RepoStore contract: a repo is created with its empty default branch and
deleted with everything that names it."""

from __future__ import annotations

import pytest

from tests.versioning.db.harness import (
    Backend,
    Chain,
    Stores,
    commit,
    new_repo,
    open_record,
    unique,
    upload_record,
)
from versioning import errors


def test_create_get_and_the_default_branch(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        name = unique()
        made = await db.repos.create_repo(name, "trunk")
        assert (made.name, made.default_branch) == (name, "trunk")
        assert await db.repos.get_repo(name) == made
        trunk = await db.refs.get_branch(name, "trunk")
        assert trunk.head is None
        assert [b.name for b in await db.refs.list_branches(name)] == ["trunk"]
        with pytest.raises(errors.RepoExists):
            await db.repos.create_repo(name, "other")
        assert await db.repos.get_repo(name) == made
        with pytest.raises(errors.BranchNotFound):
            await db.refs.get_branch(name, "other")
        with pytest.raises(errors.RepoNotFound):
            await db.repos.get_repo(unique())
        assert made in await db.repos.list_repos()

    backend.run(scenario)


def test_repos_page_in_byte_order(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        tag = unique("p") + "-"
        names = [tag + s for s in ("b", "A", "a", "é", "Z", "a0")]
        for name in names:
            await db.repos.create_repo(name, "main")
        expected = sorted(names, key=lambda n: n.encode())
        # Names sharing a prefix are contiguous in byte order: no other
        # test's repo falls between them.
        page = await db.repos.repos_page(tag, len(names))
        assert [r.name for r in page] == expected
        page = await db.repos.repos_page(expected[1], 2)
        assert [r.name for r in page] == expected[2:4]
        listed = {r.name for r in await db.repos.list_repos()}
        assert set(names) <= listed

    backend.run(scenario)


def test_repo_summary_counts_visible_branches_and_the_newest_head(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        assert await db.repos.repo_summary(repo) == (1, None)
        first = await commit(db, repo, "main", {"k": b"1"})
        await db.refs.create_branch_at(repo, "old", first.id)
        await db.refs.create_branch_at(repo, "empty", None)
        second = await commit(db, repo, "main", {"k": b"2"})
        assert await db.repos.repo_summary(repo) == (3, second.id)
        # A staging branch is neither counted nor its head the newest.
        opened = open_record(repo, "main", second.id)
        await db.open_commits.create_open_commit(opened)
        staged = await commit(db, repo, opened.staging, {"k": b"3"})
        assert (await db.refs.get_branch(repo, opened.staging)).head == staged.id
        assert await db.repos.repo_summary(repo) == (3, second.id)

    backend.run(scenario)


def test_delete_repo_takes_everything_that_names_it(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        c = await commit(db, repo, "main", {"k": b"1"})
        await db.refs.create_branch_at(repo, "dev", c.id)
        await db.refs.create_tag(repo, "v1", c.id)
        up = upload_record(repo, "main", "key")
        await db.uploads.create_upload(up)
        done = upload_record(repo, "main", "done")
        await db.uploads.create_upload(done)
        chain = await Chain.on(db, repo, "main")
        completing = await chain.add({"done": b"x"})
        assert await db.writer.commit_chain(chain.write(consume_uploads=[(done.id, completing.id)]))
        opened = open_record(repo, "main", c.id)
        await db.open_commits.create_open_commit(opened)
        await db.withdrawn.withdraw(repo, "dev", [("k", c.id)])

        await db.repos.delete_repo(repo)
        with pytest.raises(errors.RepoNotFound):
            await db.repos.get_repo(repo)
        assert repo not in {r.name for r in await db.repos.list_repos()}
        assert await db.refs.list_branches(repo) == []
        with pytest.raises(errors.UploadNotFound):
            await db.uploads.get_upload(up.id)
        assert await db.uploads.get_completion(done.id) is None
        assert await db.open_commits.list_open_commits(repo) == []
        with pytest.raises(errors.CommitNotFound):
            await db.objects.get_commit(c.id)
        with pytest.raises(errors.RepoNotFound):
            await db.repos.delete_repo(repo)

        # A new repo of the same name starts from nothing.
        await db.repos.create_repo(repo, "main")
        assert await db.repos.repo_summary(repo) == (1, None)
        assert await db.refs.get_tag(repo, "v1") is None
        assert await db.refs.list_tags(repo, "", 10) == []
        assert await db.withdrawn.withdrawn_of(repo, "dev", "k") == []
        assert await db.objects.commits_with_prefix(repo, "", 10) == []

    backend.run(scenario)
