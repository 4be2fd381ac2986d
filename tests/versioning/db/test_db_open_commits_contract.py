"""OpenCommitStore contract: an open commit is a record plus a hidden staging
branch; freezing it keeps the staging head and drops the branch; aborting or
expiring drops everything it had."""

from __future__ import annotations

import os

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
from versioning.clock import now_us
from versioning.ids import CommitId, ContentId
from versioning.model import OpenCommit, UploadPart


def test_create_makes_a_staging_branch_at_the_base(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        base = await commit(db, repo, "main", {"k": b"1"})
        first = open_record(repo, "main", base.id, created=now_us() - 10)
        empty = open_record(repo, "main", None)
        await db.open_commits.create_open_commit(empty)
        await db.open_commits.create_open_commit(first)
        assert await db.open_commits.get_open_commit(repo, first.id) == first
        assert (await db.refs.get_branch(repo, first.staging)).head == base.id
        assert (await db.refs.get_branch(repo, empty.staging)).head is None
        assert first.staging.startswith("_open-")
        assert await db.open_commits.list_open_commits(repo) == [first, empty]  # by creation
        assert await db.open_commits.get_open_commit(repo, CommitId(os.urandom(16))) is None
        other = await new_repo(db)
        assert await db.open_commits.get_open_commit(other, first.id) is None
        assert await db.open_commits.list_open_commits(other) == []

    backend.run(scenario)


def test_create_refuses_a_base_of_another_repo(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo, other = await new_repo(db), await new_repo(db)
        theirs = await commit(db, other, "main", {"k": b"1"})
        record = open_record(repo, "main", theirs.id)
        with pytest.raises(errors.CommitNotFound):
            await db.open_commits.create_open_commit(record)
        assert await db.open_commits.get_open_commit(repo, record.id) is None
        with pytest.raises(errors.BranchNotFound):
            await db.refs.get_branch(repo, record.staging)

    backend.run(scenario)


def test_create_in_an_unknown_repo_raises_repo_not_found(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        with pytest.raises(errors.RepoNotFound):
            await db.open_commits.create_open_commit(open_record(unique(), "main", None))

    backend.run(scenario)


def test_freeze_keeps_the_staging_head_and_is_idempotent(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        base = await commit(db, repo, "main", {"k": b"1"})
        record = open_record(repo, "main", base.id)
        await db.open_commits.create_open_commit(record)
        staged = await commit(db, repo, record.staging, {"k": b"2"})
        up = upload_record(repo, record.staging, "big")
        await db.uploads.create_upload(up)

        assert await db.open_commits.freeze_open_commit(repo, record.id) == staged.id
        with pytest.raises(errors.BranchNotFound):
            await db.refs.get_branch(repo, record.staging)
        with pytest.raises(errors.UploadNotFound):
            await db.uploads.get_upload(up.id)
        frozen = await db.open_commits.get_open_commit(repo, record.id)
        assert frozen is not None and frozen.finishing and frozen.frozen == staged.id
        assert (frozen.base, frozen.branch, frozen.created) == (
            record.base,
            record.branch,
            record.created,
        )
        assert await db.open_commits.freeze_open_commit(repo, record.id) == staged.id
        assert (await db.refs.get_branch(repo, "main")).head == base.id

        # Nothing written to it: the frozen head is its base, or nothing.
        untouched = open_record(repo, "main", base.id)
        await db.open_commits.create_open_commit(untouched)
        assert await db.open_commits.freeze_open_commit(repo, untouched.id) == base.id
        empty = open_record(repo, "main", None)
        await db.open_commits.create_open_commit(empty)
        assert await db.open_commits.freeze_open_commit(repo, empty.id) is None
        assert await db.open_commits.freeze_open_commit(repo, empty.id) is None

        with pytest.raises(errors.OpenCommitNotFound):
            await db.open_commits.freeze_open_commit(repo, CommitId(os.urandom(16)))
        other = await new_repo(db)
        with pytest.raises(errors.OpenCommitNotFound):
            await db.open_commits.freeze_open_commit(other, record.id)

    backend.run(scenario)


def test_delete_drops_the_staging_branch_and_its_uploads(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        base = await commit(db, repo, "main", {"k": b"1"})
        record = open_record(repo, "main", base.id)
        await db.open_commits.create_open_commit(record)
        await commit(db, repo, record.staging, {"k": b"2"})
        staged_upload = upload_record(repo, record.staging, "big")
        main_upload = upload_record(repo, "main", "big")
        await db.uploads.create_upload(staged_upload)
        await db.uploads.create_upload(main_upload)

        assert await db.open_commits.delete_open_commit(repo, record.id)
        assert await db.open_commits.get_open_commit(repo, record.id) is None
        with pytest.raises(errors.BranchNotFound):
            await db.refs.get_branch(repo, record.staging)
        with pytest.raises(errors.UploadNotFound):
            await db.uploads.get_upload(staged_upload.id)
        assert await db.uploads.get_upload(main_upload.id) == main_upload
        assert (await db.refs.get_branch(repo, "main")).head == base.id
        assert not await db.open_commits.delete_open_commit(repo, record.id)

        # A frozen one can be aborted too.
        frozen = open_record(repo, "main", base.id)
        await db.open_commits.create_open_commit(frozen)
        await db.open_commits.freeze_open_commit(repo, frozen.id)
        assert await db.open_commits.delete_open_commit(repo, frozen.id)
        assert await db.open_commits.list_open_commits(repo) == []

    backend.run(scenario)


def test_expire_only_idle_open_commits_not_being_finished(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        now = now_us()
        long_ago = now - 3_600_000_000

        # On an empty branch: a staging head's commit time is activity, and
        # a base commit made now would be newer than these backdated starts.
        def started_long_ago() -> OpenCommit:
            return open_record(repo, "main", None, created=long_ago, idle_us=60_000_000)

        idle, written, uploading, parted, finishing = (started_long_ago() for _ in range(5))
        young = open_record(repo, "main", None, created=now - 1_000_000, idle_us=60_000_000)
        patient = open_record(repo, "main", None, created=long_ago, idle_us=7_200_000_000)
        records = [idle, written, uploading, parted, finishing, young, patient]
        for r in records:
            await db.open_commits.create_open_commit(r)
        await commit(db, repo, written.staging, {"k": b"2"})
        # An upload into the staging branch is activity, as is a part of an old one.
        await db.uploads.create_upload(upload_record(repo, uploading.staging, "u"))
        old = upload_record(repo, parted.staging, "p", created=long_ago)
        await db.uploads.create_upload(old)
        await db.uploads.put_part(
            old.id, UploadPart(1, ContentId(os.urandom(16)), 1, os.urandom(16), now - 1000)
        )
        idle_upload = upload_record(repo, idle.staging, "i", created=long_ago)
        await db.uploads.create_upload(idle_upload)
        await db.open_commits.freeze_open_commit(repo, finishing.id)

        expired = await db.open_commits.expire_open_commits(now)
        assert [r for r in expired if r.repo == repo] == [idle]
        assert await db.open_commits.get_open_commit(repo, idle.id) is None
        with pytest.raises(errors.BranchNotFound):
            await db.refs.get_branch(repo, idle.staging)
        with pytest.raises(errors.UploadNotFound):
            await db.uploads.get_upload(idle_upload.id)
        left = {r.id for r in await db.open_commits.list_open_commits(repo)}
        assert left == {r.id for r in records[1:]}
        assert [r for r in await db.open_commits.expire_open_commits(now) if r.repo == repo] == []

    backend.run(scenario)
