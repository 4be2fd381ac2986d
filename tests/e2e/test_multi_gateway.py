"""Three `loxo serve` processes on one PostgreSQL and one data dir behave as
one server with S3's read-after-write consistency (docs/design/multi-gateway.md):
what one acknowledges, the others serve at once; concurrent writers spread
over them make one linear history; a gateway killed mid-load loses nothing
it acknowledged."""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import Database, unique_name
from multi_gateway import Gateways, start_gateways
from test_e2e_concurrency import linear_history

from gateway.client import Client

THREADS = 8
PUTS_PER_THREAD = 500


def code_of(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


@pytest.fixture(scope="module")
def gateways(
    tmp_path_factory: pytest.TempPathFactory, fresh_database: Callable[[], str]
) -> Iterator[Gateways]:
    gws = start_gateways(tmp_path_factory.mktemp("multi") / "data", fresh_database, 3)
    yield gws
    gws.stop()


def test_what_one_gateway_acknowledges_the_others_serve_at_once(gateways: Gateways) -> None:
    a, b, c = gateways.clients()
    bucket = unique_name("rw")
    a.create_bucket(Bucket=bucket)
    # Created on A: writable on B at once, readable on C at once.
    put = b.put_object(Bucket=bucket, Key="k", Body=b"first")
    got = c.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"first"
    assert got["VersionId"] == put["VersionId"]
    # Overwritten on A: the new body on C at once, and on B.
    again = a.put_object(Bucket=bucket, Key="k", Body=b"second")
    for client in (c, b):
        got = client.get_object(Bucket=bucket, Key="k")
        assert (got["Body"].read(), got["VersionId"]) == (b"second", again["VersionId"])
    # The old version, by its id, through the third.
    old = c.get_object(Bucket=bucket, Key="k", VersionId=put["VersionId"])
    assert old["Body"].read() == b"first"
    # Deleted on B: 404 on A at once (and listed nowhere).
    b.delete_object(Bucket=bucket, Key="k")
    with pytest.raises(ClientError) as caught:
        a.get_object(Bucket=bucket, Key="k")
    assert code_of(caught.value) == "NoSuchKey"
    assert c.list_objects_v2(Bucket=bucket).get("KeyCount") == 0

    # A branch bucket made on C is writable on A at once.
    c.create_bucket(Bucket=f"{bucket}.dev")
    a.put_object(Bucket=f"{bucket}.dev", Key="d", Body=b"dev")
    assert b.get_object(Bucket=f"{bucket}.dev", Key="d")["Body"].read() == b"dev"
    # Dropped on A (to the trash), gone on B; made again on B, writable on C.
    a.delete_object(Bucket=f"{bucket}.dev", Key="d")
    a.delete_bucket(Bucket=f"{bucket}.dev")
    with pytest.raises(ClientError) as caught:
        b.put_object(Bucket=f"{bucket}.dev", Key="late", Body=b"x")
    assert code_of(caught.value) == "NoSuchBucket"
    b.create_bucket(Bucket=f"{bucket}.dev")
    c.put_object(Bucket=f"{bucket}.dev", Key="new", Body=b"new")
    assert a.get_object(Bucket=f"{bucket}.dev", Key="new")["Body"].read() == b"new"

    # A whole repo dropped on C and made again on A: B serves the new one.
    c.delete_object(Bucket=f"{bucket}.dev", Key="new")
    c.delete_bucket(Bucket=f"{bucket}.dev")
    c.delete_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as caught:
        b.head_bucket(Bucket=bucket)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    a.create_bucket(Bucket=bucket)
    b.create_bucket(Bucket=f"{bucket}.other")  # the repo exists again: a branch of it
    assert b.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    with pytest.raises(ClientError) as caught:  # the old repo's versions are gone
        b.get_object(Bucket=bucket, Key="k", VersionId=put["VersionId"])
    assert code_of(caught.value) in ("NoSuchVersion", "NoSuchKey", "NoSuchBucket")


def body_for(thread: int, i: int) -> bytes:
    return f"t{thread} put {i} ".encode() * (1 + (thread * 7 + i) % 13)


@pytest.mark.slow
def test_concurrent_puts_over_three_gateways_make_one_chain(gateways: Gateways) -> None:
    """8 x 500 PUTs to one branch, the writers round-robin over the gateways:
    4,000 versions, exactly 4,000 commits in ONE chain (read with the log
    API), each writer's PUTs in its order, every object readable anywhere."""
    bucket = unique_name("chain")
    gateways.client().create_bucket(Bucket=bucket)

    def writer(thread: int) -> list[tuple[str, str]]:
        client = gateways.client()  # thread t writes through gateway t % 3
        out = []
        for i in range(PUTS_PER_THREAD):
            key = f"w{thread}/k{i:03d}"
            resp = client.put_object(Bucket=bucket, Key=key, Body=body_for(thread, i))
            out.append((key, resp["VersionId"]))
        return out

    with ThreadPoolExecutor(THREADS) as pool:
        per_thread = list(pool.map(writer, range(THREADS)))
    total = THREADS * PUTS_PER_THREAD
    written = [item for items in per_thread for item in items]
    version_of = dict(written)
    assert len({v for _, v in written}) == total, "two writes reported the same version id"

    # The log, through the control API of one gateway: one chain of exactly
    # one commit per PUT, newest first, each the parent of the one before.
    server = gateways[1]
    with Client(server.endpoint, server.access_key or "", server.secret_key or "") as api:
        log = list(api.log(bucket))
    assert len(log) == total
    for newer, older in itertools.pairwise(log):
        assert newer.parents == (older.id,)
    assert log[-1].parents == ()
    assert {c.id for c in log} == set(version_of.values())
    position = {c.id: n for n, c in enumerate(reversed(log), start=1)}
    for items in per_thread:  # each writer's PUTs land in its order
        positions = [position[v] for _, v in items]
        assert positions == sorted(positions)
    # The same from the database: every commit of the repo is on the chain.
    assert len(linear_history(Database(gateways.dsn), bucket)) == total

    # Every gateway lists all 4,000 keys; a sample reads back everywhere.
    expected = sorted(version_of)
    for client in gateways.clients():
        keys = [
            o["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])
        ]
        assert keys == expected
    clients = gateways.clients()
    for n, (thread, i) in enumerate((t, i) for t in range(THREADS) for i in range(0, 500, 25)):
        key = f"w{thread}/k{i:03d}"
        got = clients[n % 3].get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == body_for(thread, i)
        assert got["VersionId"] == version_of[key]


def test_a_gateway_killed_mid_load_loses_nothing_it_acknowledged(
    tmp_path: Path, fresh_database: Callable[[], str]
) -> None:
    """Writers round-robin over 3 gateways; one is killed with SIGKILL while
    they write (its connections, branch turns and perhaps the leader lock die
    with it). Every acknowledged PUT reads back, body and version, through the
    survivors, and through the killed one after its restart."""
    gws = start_gateways(tmp_path / "data", fresh_database, 3)
    try:
        bucket = unique_name("kill")
        gws[0].client().create_bucket(Bucket=bucket)
        acked: dict[str, tuple[bytes, str]] = {}
        acked_at: dict[str, float] = {}
        failed: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()
        victim = gws[1]

        def writer(thread: int) -> None:
            # No retries: a PUT is acknowledged exactly when it answered 200.
            clients = [s3_client_no_retry(s) for s in gws]
            i = 0
            while not stop.is_set():
                target = (thread + i) % 3
                if target == 1 and not victim.running:
                    target = 0 if thread % 2 else 2
                key, body = f"w{thread}/{i:05d}", f"{thread}:{i} ".encode() * (1 + i % 40)
                try:
                    resp = clients[target].put_object(Bucket=bucket, Key=key, Body=body)
                except Exception as exc:  # the victim dying under us
                    with lock:
                        failed.append(f"{key} via {target}: {type(exc).__name__}")
                else:
                    with lock:
                        acked[key] = (body, resp["VersionId"])
                        acked_at[key] = time.monotonic()
                i += 1

        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(writer, t) for t in range(6)]
            time.sleep(3.0)
            victim.stop(signal.SIGKILL)
            killed_at = time.monotonic()
            time.sleep(3.0)
            stop.set()
            for future in futures:
                future.result()
        assert acked, "nothing was written"
        assert all(" via 1" in f for f in failed), failed  # only the victim failed
        with lock:
            snapshot = dict(acked)

        def check_all(server: Any) -> None:
            client = server.client()
            for key, (body, version) in snapshot.items():
                got = client.get_object(Bucket=bucket, Key=key)
                assert got["Body"].read() == body, key
                assert got["VersionId"] == version, key

        for survivor in (gws[0], gws[2]):
            check_all(survivor)
        victim.restart()
        check_all(victim)
        # One linear history holding every acknowledged version (the victim
        # may have committed a write it never answered: that one is there too).
        chain = linear_history(Database(gws.dsn), bucket)
        assert {v for _, v in snapshot.values()} <= set(chain)
        # The survivors kept writing soon after the kill: branch turns the
        # victim held were given back by PostgreSQL, not waited out.
        assert any(killed_at < t < killed_at + 1.5 for t in acked_at.values())
    finally:
        gws.stop()


def s3_client_no_retry(server: Any) -> Any:
    return server.client(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2)
