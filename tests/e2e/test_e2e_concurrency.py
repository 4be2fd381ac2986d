"""Many concurrent writers on one branch: no write lost, one commit each, linear history."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

THREADS = 8
PUTS_PER_THREAD = 100
TOTAL = THREADS * PUTS_PER_THREAD


def body_for(thread: int, i: int) -> bytes:
    return f"thread {thread} put {i} ".encode() * (1 + (thread * 7 + i) % 13)


def linear_history(db: Any, repo: str, branch: str = "main") -> list[str]:
    """The repo's commits, oldest first, checking they form ONE chain that ends
    at the branch head and holds every commit of the repo."""
    from versioning.model import Commit

    rows = db.fetch("SELECT id, data FROM commits WHERE repo = $1", repo)
    commits = {bytes(r["id"]).hex(): Commit.decode(bytes(r["data"])) for r in rows}
    chain: list[str] = []
    cursor: str | None = db.branch_head(repo, branch)
    while cursor is not None:
        chain.append(cursor)
        parents = commits[cursor].parents
        assert len(parents) <= 1, "a merge commit in a linear history"
        cursor = parents[0].hex() if parents else None
        assert len(chain) <= len(commits), "the parent chain loops"
    assert len(chain) == len(commits), "some commits are not on the branch's history"
    chain.reverse()
    return chain


@pytest.mark.slow
def test_concurrent_puts_make_a_linear_history(server: Any, db: Any, new_bucket: Any) -> None:
    bucket = new_bucket("conc")

    def writer(thread: int) -> list[tuple[str, str]]:
        client = server.client()
        out = []
        for i in range(PUTS_PER_THREAD):
            key = f"w{thread}/k{i:03d}"
            resp = client.put_object(Bucket=bucket, Key=key, Body=body_for(thread, i))
            out.append((key, resp["VersionId"]))
        return out

    with ThreadPoolExecutor(THREADS) as pool:
        per_thread = list(pool.map(writer, range(THREADS)))
    written = [item for items in per_thread for item in items]
    version_of = dict(written)
    key_of = {v: k for k, v in written}
    assert len(version_of) == TOTAL
    assert len(key_of) == TOTAL, "two writes reported the same version id"

    # every object readable, with its own body
    def check(thread: int) -> None:
        client = server.client()
        for i in range(PUTS_PER_THREAD):
            key = f"w{thread}/k{i:03d}"
            got = client.get_object(Bucket=bucket, Key=key)
            assert got["Body"].read() == body_for(thread, i), key
            assert got["VersionId"] == version_of[key], key

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(check, range(THREADS)))

    # exactly one commit per write, all on one chain ending at the branch head
    chain = linear_history(db, bucket)
    assert set(chain) == set(key_of)
    position = {commit: n for n, commit in enumerate(chain, start=1)}
    # each client's writes were sequential, so they appear in its order
    for items in per_thread:
        positions = [position[v] for _, v in items]
        assert positions == sorted(positions)

    # snapshots: the one after write n holds exactly the keys of writes 1..n
    sample = random.Random(1234).sample(chain, 40)
    lister = server.client().get_paginator("list_objects_v2")
    counts = []
    for version in sample:
        snap = f"{bucket}.{version}"
        keys: list[str] = []
        for page in lister.paginate(Bucket=snap):
            keys += [o["Key"] for o in page.get("Contents", [])]
        counts.append(len(keys))
        n = position[version]
        assert len(keys) == n
        assert set(keys) == {key_of[v] for v in chain[:n]}
    assert len(set(counts)) == len(counts)
    assert all(1 <= c <= TOTAL for c in counts)


@pytest.mark.slow
def test_two_servers_on_one_database(make_server: Any) -> None:
    """Two loxo processes sharing a database and a data dir write to the same
    branch at once: branch heads move by compare-and-set, so nothing is lost."""
    first = make_server()
    second = make_server(data_dir=first.data_dir, dsn=first.dsn)
    first.client().create_bucket(Bucket="shared")

    def writer(n: int) -> list[tuple[str, str, bytes]]:
        client = (first if n % 2 else second).client()
        out = []
        for i in range(50):
            key, body = f"s{n}/k{i:02d}", f"{n}/{i}".encode() * 100
            out.append(
                (key, client.put_object(Bucket="shared", Key=key, Body=body)["VersionId"], body)
            )
        return out

    with ThreadPoolExecutor(8) as pool:
        written = [w for items in pool.map(writer, range(8)) for w in items]
    assert len({v for _, v, _ in written}) == 400
    db = first.db()
    assert db.commit_count("shared") == 400
    assert set(linear_history(db, "shared")) == {v for _, v, _ in written}
    for srv in (first, second):
        client = srv.client()
        keys = [
            o["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket="shared")
            for o in page.get("Contents", [])
        ]
        assert keys == sorted(k for k, _, _ in written)
    reader = second.client()
    for key, _, body in written[::10]:
        assert reader.get_object(Bucket="shared", Key=key)["Body"].read() == body


def test_concurrent_create_bucket(server: Any, new_bucket: Any) -> None:
    name = new_bucket("race", create=False)

    def create(_: int) -> str:
        from botocore.exceptions import ClientError

        try:
            server.client().create_bucket(Bucket=name)
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "created"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(create, range(8)))
    # Re-creating a bucket you own succeeds in us-east-1: every racer gets 200,
    # and there is one repo.
    assert outcomes == ["created"] * 8
    assert [b["Name"] for b in server.client().list_buckets()["Buckets"]].count(name) == 1
