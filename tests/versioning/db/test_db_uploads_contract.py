"""UploadStore contract: multipart uploads in progress, their parts, their
listing in (key, id) byte order, expiry by idle time, and the completions
a commit records when it consumes one."""

from __future__ import annotations

import itertools
import os

import pytest

from tests.versioning.db.harness import (
    Backend,
    Chain,
    Stores,
    new_repo,
    unique,
    upload_record,
)
from versioning import errors
from versioning.clock import now_us
from versioning.ids import ContentId
from versioning.model import Upload, UploadPart


def part(number: int, created: int | None = None, **checksums: str) -> UploadPart:
    return UploadPart(
        part_number=number,
        content=ContentId(os.urandom(16)),
        size=5 * 1024 * 1024 + number,
        md5=os.urandom(16),
        created=created if created is not None else now_us(),
        checksums=checksums,
    )


def test_create_and_get(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        up = upload_record(unique(), "main", "dir/key é")
        await db.uploads.create_upload(up)
        assert await db.uploads.get_upload(up.id) == up
        bare = Upload(unique("u"), up.repo, "main", "k", now_us(), b"")
        await db.uploads.create_upload(bare)
        assert await db.uploads.get_upload(bare.id) == bare
        with pytest.raises(errors.UploadNotFound):
            await db.uploads.get_upload(unique("u"))

    backend.run(scenario)


def test_parts_are_listed_in_order_and_a_part_replaces_its_number(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        up = upload_record(unique(), "main", "key")
        await db.uploads.create_upload(up)
        assert await db.uploads.list_parts(up.id) == []
        parts = {n: part(n, crc32="AAAAAA==") for n in (3, 1, 10, 2)}
        for p in parts.values():
            await db.uploads.put_part(up.id, p)
        assert await db.uploads.list_parts(up.id) == [parts[n] for n in (1, 2, 3, 10)]
        replaced = part(2)  # no checksums this time
        await db.uploads.put_part(up.id, replaced)
        assert await db.uploads.list_parts(up.id) == [parts[1], replaced, parts[3], parts[10]]
        with pytest.raises(errors.UploadNotFound):
            await db.uploads.put_part(unique("u"), part(1))
        assert await db.uploads.list_parts(unique("u")) == []

    backend.run(scenario)


def test_delete_upload(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        up = upload_record(unique(), "main", "key")
        await db.uploads.create_upload(up)
        await db.uploads.put_part(up.id, part(1))
        assert await db.uploads.delete_upload(up.id)
        assert not await db.uploads.delete_upload(up.id)
        with pytest.raises(errors.UploadNotFound):
            await db.uploads.get_upload(up.id)
        assert await db.uploads.list_parts(up.id) == []
        with pytest.raises(errors.UploadNotFound):
            await db.uploads.put_part(up.id, part(2))

    backend.run(scenario)


def _expected(
    uploads: list[Upload],
    prefix: str,
    after_key: str,
    after_id: str,
    limit: int,
    skip: bool,
) -> list[Upload]:
    """The listing contract, stated over plain Python byte strings."""
    chosen = [
        u
        for u in uploads
        if u.key.startswith(prefix)
        and (
            u.key.encode() > after_key.encode()
            or (u.key == after_key and u.id.encode() > after_id.encode())
        )
        and not (skip and u.key.startswith(after_key))
    ]
    return sorted(chosen, key=lambda u: (u.key.encode(), u.id.encode()))[:limit]


def test_list_uploads_in_key_then_id_byte_order(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = unique()
        tag = unique("u")
        keys = ["a", "B", "é", "a/b", "a/c", "Z", "a/b/c", "ab", "photos/É", "photos/e"]
        # Two uploads per key (three for "a/b"), ids differing in case.
        uploads = [
            upload_record(repo, "main", key, upload_id=f"{tag}-{suffix}{j}")
            for j, key in enumerate(keys)
            for suffix in ("x", "X", "ä")[: 3 if key == "a/b" else 2]
        ]
        # Other branches' and repos' uploads are never listed.
        noise = [upload_record(repo, "dev", "a"), upload_record(unique(), "main", "a")]
        for up in [*uploads, *noise]:
            await db.uploads.create_upload(up)

        starts = [("", ""), ("a", ""), ("a", f"{tag}-X0"), ("a/", ""), ("a/b", f"{tag}-x3")]
        starts += [("photos/", ""), ("é", f"{tag}-X2"), ("zzz", "")]
        for prefix in ("", "a", "a/", "photos/", "nothing"):
            for (after_key, after_id), skip, limit in itertools.product(
                starts, (False, True), (3, 100)
            ):
                got = await db.uploads.list_uploads(
                    repo, "main", prefix, after_key, after_id, limit, skip_key_prefix=skip
                )
                want = _expected(uploads, prefix, after_key, after_id, limit, skip)
                assert got == want, (prefix, after_key, after_id, limit, skip)

    backend.run(scenario)


def test_expire_uploads_by_idle_time(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        cutoff = now_us() - 60_000_000  # idle since a minute ago
        repo = unique()
        idle = upload_record(repo, "main", "idle", created=cutoff - 10)
        idle_parts = upload_record(repo, "main", "idle-parts", created=cutoff - 10)
        busy = upload_record(repo, "main", "busy", created=cutoff - 10)
        fresh = upload_record(repo, "main", "fresh", created=cutoff)
        for up in (idle, idle_parts, busy, fresh):
            await db.uploads.create_upload(up)
        await db.uploads.put_part(idle_parts.id, part(1, created=cutoff - 5))
        await db.uploads.put_part(busy.id, part(1, created=cutoff - 5))
        await db.uploads.put_part(busy.id, part(2, created=cutoff))  # activity

        expired = await db.uploads.expire_uploads(cutoff)
        mine = {idle.id, idle_parts.id, busy.id, fresh.id}
        assert sorted(set(expired) & mine) == sorted([idle.id, idle_parts.id])
        assert len(expired) == len(set(expired))
        for gone in (idle, idle_parts):
            with pytest.raises(errors.UploadNotFound):
                await db.uploads.get_upload(gone.id)
            assert await db.uploads.list_parts(gone.id) == []
        assert await db.uploads.get_upload(busy.id) == busy
        assert len(await db.uploads.list_parts(busy.id)) == 2
        assert await db.uploads.get_upload(fresh.id) == fresh
        assert not set(await db.uploads.expire_uploads(cutoff)) & mine

    backend.run(scenario)


def test_completions(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        up = upload_record(repo, "main", "big")
        await db.uploads.create_upload(up)
        await db.uploads.put_part(up.id, part(1))
        assert await db.uploads.get_completion(up.id) is None
        chain = await Chain.on(db, repo, "main")
        made = await chain.add({"big": b"assembled"})
        before = now_us()
        assert await db.writer.commit_chain(chain.write(consume_uploads=[(up.id, made.id)]))
        after = now_us()
        done = await db.uploads.get_completion(up.id)
        assert done is not None
        assert (done.upload_id, done.repo, done.branch, done.key, done.commit) == (
            up.id,
            repo,
            "main",
            "big",
            made.id,
        )
        assert before <= done.completed <= after
        # Forgetting keeps what completed at or after `before`.
        await db.uploads.forget_completions(done.completed)
        assert await db.uploads.get_completion(up.id) == done
        assert await db.uploads.forget_completions(done.completed + 1) >= 1
        assert await db.uploads.get_completion(up.id) is None
        assert await db.uploads.forget_completions(done.completed + 1) == 0

    backend.run(scenario)
