"""Open commits end to end: many S3 writes become ONE commit; abort, a crash
or the idle limit leave the branch untouched; gc keeps what an open commit
holds; ref moves wait for a running gc."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import pytest
from botocore.exceptions import ClientError

from gateway.client import Client, LoxoError
from tests.conftest import LoxoServer, run_async
from versioning.catalog import MOVE_LOCK
from versioning.db import Database
from versioning.ids import CommitId


def api_for(srv: LoxoServer, **options: float) -> Client:
    assert srv.access_key is not None and srv.secret_key is not None
    return Client(srv.endpoint, srv.access_key, srv.secret_key, **options)


@pytest.fixture
def api(server: LoxoServer) -> Iterator[Client]:
    with api_for(server) as client:
        yield client


def fresh_repo(api: Client) -> str:
    name = f"oc-{uuid.uuid4().hex[:8]}"
    api.create_repo(name)
    return name


def put_many(s3: object, bucket: str, count: int, prefix: str = "f") -> dict[str, bytes]:
    bodies = {
        f"{prefix}/{i:04d}.txt": f"body {i} {uuid.uuid4().hex}".encode() for i in range(count)
    }

    def one(item: tuple[str, bytes]) -> None:
        s3.put_object(Bucket=bucket, Key=item[0], Body=item[1])  # type: ignore[attr-defined]

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, bodies.items()))
    return bodies


def hold_lock(dsn: str, sql: str, *args: object) -> tuple[threading.Event, threading.Thread]:
    """Run `sql` in a transaction on its own connection and keep it open (its
    locks held) until the returned event is set."""
    release, held = threading.Event(), threading.Event()

    async def hold() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            async with conn.transaction():
                await conn.execute(sql, *args)
                held.set()
                while not release.is_set():
                    await asyncio.sleep(0.05)
        finally:
            await conn.close()

    thread = threading.Thread(target=run_async, args=(hold(),))
    thread.start()
    assert held.wait(10)
    return release, thread


def upload_in_parts(
    s3: Any, bucket: str, key: str, part: bytes, count: int, pause: float = 0.0
) -> None:
    """A multipart upload of `count` copies of `part`, `pause` s before each."""
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for n in range(1, count + 1):
        time.sleep(pause)
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=part)[
            "ETag"
        ]
        parts.append({"ETag": etag, "PartNumber": n})
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )


def test_many_puts_become_one_commit(server: LoxoServer, api: Client) -> None:
    repo = fresh_repo(api)
    s3 = server.client()
    s3.put_object(Bucket=repo, Key="before.txt", Body=b"before")
    head = api.get_branch(repo, "main").head
    opened = api.start_commit(repo, "main")
    assert opened.bucket == f"{repo}.{opened.id}" and opened.base == head
    bodies = put_many(s3, opened.bucket, 120)
    s3.delete_object(Bucket=opened.bucket, Key="before.txt")
    # Readable inside the open commit, invisible on the branch.
    assert (
        s3.get_object(Bucket=opened.bucket, Key="f/0007.txt")["Body"].read() == bodies["f/0007.txt"]
    )
    assert api.get_branch(repo, "main").head == head
    assert s3.list_objects_v2(Bucket=repo)["KeyCount"] == 1
    # Writes to the branch meanwhile, on other paths, are kept.
    s3.put_object(Bucket=repo, Key="meanwhile.txt", Body=b"m")
    moved = api.get_branch(repo, "main").head

    commit = api.finish_commit(repo, opened.id, "120 files at once")
    assert commit is not None
    info = api.inspect(repo, "main")
    assert info.id == commit and info.parents == (moved,)
    assert info.message == "120 files at once"
    assert info.changes == {"added": 120, "modified": 0, "deleted": 1}
    assert info.origin["open_commit"] == opened.id
    log = [c.id for c in api.log(repo)]
    assert log[:2] == [commit, moved] and len(log) == 3  # before, meanwhile, the one commit
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=repo, MaxKeys=1000)["Contents"]}
    assert keys == set(bodies) | {"meanwhile.txt"}
    for key in ("f/0000.txt", "f/0119.txt"):
        assert s3.get_object(Bucket=repo, Key=key)["Body"].read() == bodies[key]
    # Each object's version is the one commit.
    assert s3.head_object(Bucket=repo, Key="f/0000.txt")["VersionId"] == commit
    # The open commit is gone: its bucket takes no more writes.
    with pytest.raises(ClientError) as caught:
        s3.put_object(Bucket=opened.bucket, Key="late.txt", Body=b"late")
    assert caught.value.response["Error"]["Code"] == "NoSuchBucket"
    assert list(api.list_open_commits(repo)) == []


def test_multipart_and_copy_inside_an_open_commit(server: LoxoServer, api: Client) -> None:
    repo = fresh_repo(api)
    s3 = server.client()
    s3.put_object(Bucket=repo, Key="src.bin", Body=b"s" * 1000)
    opened = api.start_commit(repo)
    part = b"p" * (5 * 1024 * 1024)
    upload_in_parts(s3, opened.bucket, "big.bin", part, 2)
    s3.copy_object(
        Bucket=opened.bucket, Key="copy.bin", CopySource={"Bucket": repo, "Key": "src.bin"}
    )
    before = api.get_branch(repo, "main").head
    commit = api.finish_commit(repo, opened.id, "multipart and copy")
    assert api.inspect(repo, commit).parents == (before,)
    assert s3.head_object(Bucket=repo, Key="big.bin")["ContentLength"] == 2 * len(part)
    assert s3.get_object(Bucket=repo, Key="copy.bin")["Body"].read() == b"s" * 1000


def test_abort_and_empty_finish_leave_the_branch_untouched(server: LoxoServer, api: Client) -> None:
    repo = fresh_repo(api)
    s3 = server.client()
    s3.put_object(Bucket=repo, Key="keep.txt", Body=b"keep")
    head = api.get_branch(repo, "main").head
    opened = api.start_commit(repo)
    put_many(s3, opened.bucket, 10)
    api.abort_commit(repo, opened.id[:10])  # a unique prefix is enough
    assert api.get_branch(repo, "main").head == head
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=repo)["Contents"]] == ["keep.txt"]
    with pytest.raises(ClientError):
        s3.list_objects_v2(Bucket=opened.bucket)
    with pytest.raises(LoxoError) as caught:
        api.finish_commit(repo, opened.id, "too late")
    assert caught.value.code == "open_commit_not_found"
    empty = api.start_commit(repo)
    assert api.finish_commit(repo, empty.id, "nothing") is None
    assert api.get_branch(repo, "main").head == head


def test_a_crash_leaves_the_branch_untouched_and_the_open_commit_finishable(
    make_server: Callable[..., LoxoServer],
) -> None:
    srv = make_server()
    s3 = srv.client()
    with api_for(srv) as api:
        repo = fresh_repo(api)
        s3.put_object(Bucket=repo, Key="base.txt", Body=b"base")
        head = api.get_branch(repo, "main").head
        opened = api.start_commit(repo)
        bodies = put_many(s3, opened.bucket, 30)
    srv.stop(signal.SIGKILL)
    srv.restart()
    s3 = srv.client()
    with api_for(srv) as api:
        assert api.get_branch(repo, "main").head == head
        assert [o.id for o in api.list_open_commits(repo)] == [opened.id]
        # Every acknowledged write to the open commit survived the crash.
        commit = api.finish_commit(repo, opened.id, "after the crash")
        assert api.inspect(repo, commit).changes["added"] == 30
    for key, body in bodies.items():
        assert s3.get_object(Bucket=repo, Key=key)["Body"].read() == body


def test_idle_open_commits_are_aborted(make_server: Callable[..., LoxoServer]) -> None:
    srv = make_server(extra_args=["--open-commit-idle-minutes", "60"])
    s3 = srv.client()
    with api_for(srv) as api:
        repo = fresh_repo(api)
        head = api.get_branch(repo, "main").head
        short = api.start_commit(repo, idle_seconds=1)
        s3.put_object(Bucket=short.bucket, Key="x.txt", Body=b"x")
        long = api.start_commit(repo)  # the server's 60 minutes
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if [o.id for o in api.list_open_commits(repo)] == [long.id]:
                break
            time.sleep(0.5)
        assert [o.id for o in api.list_open_commits(repo)] == [long.id]
        assert api.get_branch(repo, "main").head == head
        assert "aborted open commit " + short.id in srv.log_text()


def test_gc_keeps_what_an_open_commit_holds(make_server: Callable[..., LoxoServer]) -> None:
    srv = make_server()
    s3 = srv.client()
    with api_for(srv) as api:
        repo = fresh_repo(api)
        opened = api.start_commit(repo)
        big = bytes(range(256)) * 8192  # 2 MiB: stored as chunks, not inline
        s3.put_object(Bucket=opened.bucket, Key="big.bin", Body=big)
        report = srv.maintenance("gc", "--grace-minutes", "0")
        assert report.returncode == 0, report.stderr
        commit = api.finish_commit(repo, opened.id, "after gc")
        assert commit is not None
        report = srv.maintenance("gc", "--grace-minutes", "0")
        assert report.returncode == 0, report.stderr
        assert s3.get_object(Bucket=repo, Key="big.bin")["Body"].read() == big
        # A tag keeps its commit (and its bodies) after the branch moves away.
        api.create_tag(repo, "kept", "main")
        s3.delete_object(Bucket=repo, Key="big.bin")
        report = srv.maintenance("gc", "--grace-minutes", "0")
        assert report.returncode == 0, report.stderr
        snapshot = f"{repo}.{commit}"
        assert s3.get_object(Bucket=snapshot, Key="big.bin")["Body"].read() == big
        fsck = srv.maintenance("fsck")
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_ref_moves_wait_for_a_running_gc(server: LoxoServer, api: Client) -> None:
    """While gc holds its lock, a ref may not be pointed at a commit no ref
    names (the gc's mark may not have reached it); at a current head it may."""
    repo = fresh_repo(api)
    s3 = server.client()
    for n in range(3):
        s3.put_object(Bucket=repo, Key="f.txt", Body=f"v{n}".encode())
    head = api.get_branch(repo, "main").head
    old = api.inspect(repo, "main~2").id
    assert server.dsn is not None
    release, holder = hold_lock(server.dsn, "SELECT pg_advisory_lock($1)", MOVE_LOCK)
    try:
        with api_for(server, busy_retry_seconds=0) as impatient:
            with pytest.raises(LoxoError) as caught:
                impatient.create_branch(repo, "old", "main~2")
            assert (caught.value.status, caught.value.code) == (503, "busy")
            with pytest.raises(LoxoError) as caught:
                impatient.create_tag(repo, "old-tag", old)
            assert caught.value.code == "busy"
            # Pointing at what a ref names already is always safe.
            assert impatient.create_branch(repo, "same", "main").head == head
        # A patient client retries until gc is done.
        threading.Timer(1.0, release.set).start()
        assert api.reset_branch(repo, "same", old).head == old
    finally:
        release.set()
        holder.join()
    assert api.get_branch(repo, "main").head == head


def test_a_finish_cut_short_after_freezing_completes_later(
    make_server: Callable[..., LoxoServer],
) -> None:
    """Finishing first freezes the staging branch, then commits. A server
    that dies in between leaves a frozen open commit: its writes are a gc
    root, the branch is untouched, and finishing again completes it."""
    srv = make_server()
    s3 = srv.client()
    assert srv.dsn is not None
    dsn = srv.dsn
    with api_for(srv) as client:
        repo = fresh_repo(client)
        s3.put_object(Bucket=repo, Key="base.txt", Body=b"base")
        head = client.get_branch(repo, "main").head
        opened = client.start_commit(repo)
        big = bytes(range(256)) * 8192
        s3.put_object(Bucket=opened.bucket, Key="big.bin", Body=big)

        async def freeze() -> None:
            # The first step of finish, as the server runs it, then no more.
            meta = await Database.connect(dsn, min_size=1, max_size=1)
            try:
                await meta.open_commits.freeze_open_commit(repo, CommitId(bytes.fromhex(opened.id)))
            finally:
                await meta.close()

        run_async(freeze())
        srv.stop(signal.SIGKILL)
        srv.restart()
        s3 = srv.client()
    with api_for(srv) as client:
        assert client.get_branch(repo, "main").head == head
        [frozen] = client.list_open_commits(repo)
        assert frozen.finishing
        # Writes to a freezing open commit are refused, never lost.
        with pytest.raises(ClientError):
            s3.put_object(Bucket=opened.bucket, Key="late.txt", Body=b"late")
        gc = srv.maintenance("gc", "--grace-minutes", "0")
        assert gc.returncode == 0, gc.stderr
        commit = client.finish_commit(repo, opened.id, "finished after the crash")
        assert client.inspect(repo, commit).changes == {"added": 1, "modified": 0, "deleted": 0}
        assert s3.get_object(Bucket=repo, Key="big.bin")["Body"].read() == big
        assert list(client.list_open_commits(repo)) == []


def test_a_tag_is_a_read_only_bucket(server: LoxoServer, api: Client) -> None:
    """Tags are usable wherever a ref is, S3 included: `repo.<tag>`."""
    repo = fresh_repo(api)
    s3 = server.client()
    s3.put_object(Bucket=repo, Key="a.txt", Body=b"v1")
    api.create_tag(repo, "v1", "main")
    s3.put_object(Bucket=repo, Key="a.txt", Body=b"v2")
    bucket = f"{repo}.v1"
    assert s3.get_object(Bucket=bucket, Key="a.txt")["Body"].read() == b"v1"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["a.txt"]
    s3.copy_object(Bucket=repo, Key="copy.txt", CopySource={"Bucket": bucket, "Key": "a.txt"})
    assert s3.get_object(Bucket=repo, Key="copy.txt")["Body"].read() == b"v1"
    for write in (
        lambda: s3.put_object(Bucket=bucket, Key="b.txt", Body=b"x"),
        lambda: s3.delete_object(Bucket=bucket, Key="a.txt"),
        lambda: s3.create_multipart_upload(Bucket=bucket, Key="m.bin"),
    ):
        with pytest.raises(ClientError) as caught:
            write()
        assert caught.value.response["Error"]["Code"] == "AccessDenied"
    # A branch cannot take a tag's name, through S3 either: the bucket exists
    # (in us-east-1 re-creating it answers 200, as AWS does) and stays the tag.
    s3.create_bucket(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="a.txt")["Body"].read() == b"v1"
    with pytest.raises(ClientError) as caught:
        s3.put_object(Bucket=bucket, Key="b.txt", Body=b"x")
    assert caught.value.response["Error"]["Code"] == "AccessDenied"


def test_a_merge_waits_for_gc_when_its_source_is_unnamed(server: LoxoServer, api: Client) -> None:
    """A merge commit's second parent must survive a running gc as a ref
    move's target must: refused while gc holds its lock, unless a ref names it."""
    repo = fresh_repo(api)
    s3 = server.client()
    s3.put_object(Bucket=repo, Key="base.txt", Body=b"base")
    api.create_branch(repo, "side")
    s3.put_object(Bucket=f"{repo}.side", Key="side.txt", Body=b"1")
    s3.put_object(Bucket=f"{repo}.side", Key="side.txt", Body=b"2")
    s3.put_object(Bucket=repo, Key="main.txt", Body=b"m")  # main diverges: a real merge
    head = api.get_branch(repo, "main").head
    assert server.dsn is not None
    release, holder = hold_lock(server.dsn, "SELECT pg_advisory_lock($1)", MOVE_LOCK)
    try:
        with api_for(server, busy_retry_seconds=0) as impatient:
            with pytest.raises(LoxoError) as caught:
                impatient.merge(repo, "side~1", "main")  # no ref names side~1
            assert caught.value.code == "busy"
            assert impatient.get_branch(repo, "main").head == head
            merged = impatient.merge(repo, "side", "main")  # a branch head: safe
            assert merged.outcome == "merged"
    finally:
        release.set()
        holder.join()
    assert api.inspect(repo, "main").parents == (head, api.get_branch(repo, "side").head)


def test_abort_racing_a_finish_never_claims_what_landed(server: LoxoServer, api: Client) -> None:
    """Whichever wins, the answers agree with the branch: a finish that
    committed means the abort failed, and an abort that succeeded means
    nothing landed."""
    repo = fresh_repo(api)
    s3 = server.client()
    s3.put_object(Bucket=repo, Key="base.txt", Body=b"base")
    opened = api.start_commit(repo)
    s3.put_object(Bucket=opened.bucket, Key="racing.txt", Body=b"r")
    assert server.dsn is not None
    # Hold main's row, as another writer's commit in flight would: the
    # finish's commit statement waits on it, holding the open commit's row.
    release, holder = hold_lock(
        server.dsn, "SELECT 1 FROM branches WHERE repo = $1 AND name = 'main' FOR UPDATE", repo
    )
    outcomes: dict[str, object] = {}

    def finish() -> None:
        try:
            outcomes["finish"] = api.finish_commit(repo, opened.id, "race")
        except LoxoError as exc:
            outcomes["finish"] = exc.code

    def abort() -> None:
        with api_for(server) as other:
            try:
                other.abort_commit(repo, opened.id)
                outcomes["abort"] = "aborted"
            except LoxoError as exc:
                outcomes["abort"] = exc.code

    finisher = threading.Thread(target=finish)
    finisher.start()
    time.sleep(1.0)  # the finish is now waiting on main's row
    aborter = threading.Thread(target=abort)
    aborter.start()
    time.sleep(1.0)
    release.set()
    holder.join()
    finisher.join(30)
    aborter.join(30)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=repo)["Contents"]}
    landed = "racing.txt" in keys
    if landed:
        assert isinstance(outcomes["finish"], str) and len(outcomes["finish"]) == 32
        assert outcomes["abort"] == "open_commit_not_found", outcomes
    else:
        assert outcomes["abort"] == "aborted", outcomes
        assert outcomes["finish"] == "open_commit_not_found", outcomes
    assert list(api.list_open_commits(repo)) == []


def test_multipart_activity_keeps_an_open_commit_alive(server: LoxoServer, api: Client) -> None:
    repo = fresh_repo(api)
    s3 = server.client()
    opened = api.start_commit(repo, idle_seconds=3)
    part = b"p" * (5 * 1024 * 1024)
    # ~8 s of parts, one every 1.6 s: never 3 s idle
    upload_in_parts(s3, opened.bucket, "slow.bin", part, 5, pause=1.6)
    commit = api.finish_commit(repo, opened.id, "slow upload")
    assert commit is not None
    assert s3.head_object(Bucket=repo, Key="slow.bin")["ContentLength"] == 5 * len(part)
