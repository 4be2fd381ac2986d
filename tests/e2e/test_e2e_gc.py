"""Garbage collection and fsck, end to end: a real server, real PostgreSQL,
objects written with boto3, then `loxo gc` / `loxo fsck` run as the CLI.

Every check compares bytes on disk (the chunk directory) or bytes read back,
never gc's own report alone.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import LoxoServer

MiB = 1024 * 1024


def chunk_bytes(server: LoxoServer) -> int:
    assert server.data_dir is not None
    root = server.data_dir / "chunks"
    return sum(
        p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
    )


def gc(server: LoxoServer, *args: str) -> dict[str, Any]:
    done = server.maintenance("gc", "--json", *args)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def body(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def srv(make_server: Callable[..., LoxoServer]) -> LoxoServer:
    # No background gc: each test runs its passes itself. No trash: these
    # tests free what a delete let go at once (tests/e2e/test_e2e_trash.py
    # covers gc with a trash).
    return make_server(extra_args=["--gc-interval-hours", "0", "--trash-days", "0"])


def test_deleted_repo_is_freed_and_shared_chunks_are_kept(srv: LoxoServer) -> None:
    s3 = srv.client()
    s3.create_bucket(Bucket="keep")
    s3.create_bucket(Bucket="doomed")
    shared = body(1, 3 * MiB)
    s3.put_object(Bucket="keep", Key="shared.bin", Body=shared)
    before = chunk_bytes(srv)
    own = {f"f{i}.bin": body(100 + i, 2 * MiB + i) for i in range(6)}
    for key, data in own.items():
        s3.put_object(Bucket="doomed", Key=key, Body=data)
        s3.put_object(Bucket="doomed", Key=key, Body=data[::-1])  # a second version
    s3.put_object(Bucket="doomed", Key="shared-too.bin", Body=shared)
    held = chunk_bytes(srv) - before
    assert held > 20 * MiB
    for key in [*own, "shared-too.bin"]:
        s3.delete_object(Bucket="doomed", Key=key)
    s3.delete_bucket(Bucket="doomed")

    dry = gc(srv, "--dry-run", "--grace-minutes", "0")
    assert dry["dry_run"] and dry["chunks"] >= 12
    assert chunk_bytes(srv) - before == held, "a dry run deleted something"

    report = gc(srv, "--grace-minutes", "0")
    assert report["chunks"] == dry["chunks"]
    freed = held - (chunk_bytes(srv) - before)
    assert freed >= 0.99 * held, f"freed {freed} of {held} bytes the deleted repo held"
    assert s3.get_object(Bucket="keep", Key="shared.bin")["Body"].read() == shared
    again = gc(srv, "--grace-minutes", "0")
    assert again["chunks"] == 0 and again["contents"] == 0
    assert srv.maintenance("fsck").returncode == 0


def test_deleted_branch_is_freed_but_history_is_kept(srv: LoxoServer) -> None:
    s3 = srv.client()
    s3.create_bucket(Bucket="hist")
    v1 = s3.put_object(Bucket="hist", Key="a.bin", Body=body(5, 2 * MiB))["VersionId"]
    s3.put_object(Bucket="hist", Key="a.bin", Body=body(6, 2 * MiB))
    s3.delete_object(Bucket="hist", Key="a.bin")
    s3.create_bucket(Bucket="hist.tmp")
    s3.put_object(Bucket="hist.tmp", Key="big.bin", Body=body(7, 8 * MiB))
    before = chunk_bytes(srv)
    s3.delete_object(Bucket="hist.tmp", Key="big.bin")
    s3.delete_bucket(Bucket="hist.tmp")
    gc(srv, "--grace-minutes", "0")
    assert before - chunk_bytes(srv) >= 0.99 * 8 * MiB
    # The overwritten and deleted versions on main are history, kept.
    old = s3.get_object(Bucket="hist", Key="a.bin", VersionId=v1)["Body"].read()
    assert old == body(5, 2 * MiB)


def test_grace_period_spares_recent_garbage(srv: LoxoServer) -> None:
    s3 = srv.client()
    s3.create_bucket(Bucket="young")
    s3.put_object(Bucket="young", Key="x.bin", Body=body(8, 2 * MiB))
    s3.delete_object(Bucket="young", Key="x.bin")
    s3.delete_bucket(Bucket="young")
    before = chunk_bytes(srv)
    report = gc(srv)  # default grace: an hour
    assert report["chunks"] == 0 and chunk_bytes(srv) == before
    gc(srv, "--grace-minutes", "0")
    assert chunk_bytes(srv) < before


def test_aborted_and_expired_uploads_are_reclaimed(srv: LoxoServer) -> None:
    s3 = srv.client()
    s3.create_bucket(Bucket="mpu")
    baseline = chunk_bytes(srv)
    upload = s3.create_multipart_upload(Bucket="mpu", Key="big")["UploadId"]
    for n in (1, 2):
        s3.upload_part(
            Bucket="mpu", Key="big", UploadId=upload, PartNumber=n, Body=body(20 + n, 5 * MiB)
        )
    live = s3.create_multipart_upload(Bucket="mpu", Key="open")["UploadId"]
    s3.upload_part(Bucket="mpu", Key="open", UploadId=live, PartNumber=1, Body=body(30, 5 * MiB))
    gc(srv, "--grace-minutes", "0")
    assert chunk_bytes(srv) - baseline >= 15 * MiB, "gc took an open upload's parts"
    s3.abort_multipart_upload(Bucket="mpu", Key="big", UploadId=upload)
    gc(srv, "--grace-minutes", "0")
    left = chunk_bytes(srv) - baseline
    assert 5 * MiB <= left < 5.1 * MiB, left
    # The open upload still completes into a readable object.
    etag = s3.upload_part(Bucket="mpu", Key="open", UploadId=live, PartNumber=2, Body=b"tail")[
        "ETag"
    ]
    first = hashlib.md5(body(30, 5 * MiB)).hexdigest()
    s3.complete_multipart_upload(
        Bucket="mpu",
        Key="open",
        UploadId=live,
        MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": f'"{first}"'}, {"PartNumber": 2, "ETag": etag}]
        },
    )
    got = s3.get_object(Bucket="mpu", Key="open")["Body"].read()
    assert got == body(30, 5 * MiB) + b"tail"


def test_small_objects_are_inline_and_survive_gc(srv: LoxoServer) -> None:
    s3 = srv.client()
    s3.create_bucket(Bucket="tiny")
    files_before = sum(1 for _ in (srv.data_dir / "chunks").rglob("*") if _.is_file())  # type: ignore[operator]
    for i in range(200):
        s3.put_object(Bucket="tiny", Key=f"k{i}", Body=body(i, 1 + i * 50))
    files_after = sum(1 for _ in (srv.data_dir / "chunks").rglob("*") if _.is_file())  # type: ignore[operator]
    assert files_after == files_before, "objects under --inline-max became chunk files"
    gc(srv, "--grace-minutes", "0")
    for i in range(200):
        assert s3.get_object(Bucket="tiny", Key=f"k{i}")["Body"].read() == body(i, 1 + i * 50)


def test_fsck_reports_corruption_and_get_refuses_it(srv: LoxoServer) -> None:
    s3 = srv.client()
    s3.create_bucket(Bucket="rot")
    good = body(40, 3 * MiB)
    s3.put_object(Bucket="rot", Key="dir/victim.bin", Body=good)
    assert srv.maintenance("fsck").returncode == 0
    assert srv.data_dir is not None
    files = [p for p in (srv.data_dir / "chunks").rglob("*") if p.is_file()]
    assert files
    victim = max(files, key=lambda p: p.stat().st_mtime)
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))

    done = srv.maintenance("fsck")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "corrupt-chunk" in done.stdout and "rot@" in done.stdout
    assert "dir/victim.bin" in done.stdout
    as_json = json.loads(srv.maintenance("fsck", "--json").stdout)
    assert not as_json["ok"]
    assert any(a["path"] == "dir/victim.bin" for p in as_json["problems"] for a in p["affects"])

    with pytest.raises(Exception):  # noqa: B017 - the SDK's exception type varies by where it fails
        data = s3.get_object(Bucket="rot", Key="dir/victim.bin")["Body"].read()
        assert data != good  # never reached: wrong bytes must not be served
        raise AssertionError("GET served corrupt data")  # pragma: no cover

    victim.unlink()
    done = srv.maintenance("fsck")
    assert done.returncode == 1 and "missing-chunk" in done.stdout


@pytest.mark.slow
def test_gc_during_concurrent_uploads_loses_nothing(srv: LoxoServer) -> None:
    """Writers keep re-using bodies whose chunks are garbage (their repos were
    deleted) while gc runs over and over with a short grace period, and a
    garbage maker keeps deleting fresh repos: every acknowledged object must
    read back byte-exact, and fsck must pass."""
    s3 = srv.client()
    # Writers walk through the pool over the run, so bodies that were garbage
    # for a while (and collected) get re-used later, some while gc runs.
    pool = [body(500 + i, random.Random(i).randint(20_000, 2 * MiB)) for i in range(40)]
    # Make every pool body garbage: written to repos that are then deleted.
    for n, data in enumerate(pool):
        bucket = f"scratch{n}"
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="x", Body=data)
        s3.delete_object(Bucket=bucket, Key="x")
        s3.delete_bucket(Bucket=bucket)
    grace_s = 3.0
    time.sleep(grace_s + 0.5)  # the garbage is now older than the grace period
    s3.create_bucket(Bucket="live")
    stop = threading.Event()
    written: dict[str, bytes] = {}
    lock = threading.Lock()
    gc_runs = []

    started = time.monotonic()

    def writer(w: int) -> None:
        client = srv.client()
        rng = random.Random(w)
        i = 0
        while not stop.is_set():
            window = int((time.monotonic() - started) * 1.5)
            data = pool[min(window + rng.randint(0, 3), len(pool) - 1)]
            if rng.random() < 0.3:
                data = data + os.urandom(rng.randint(1, 70_000))  # some fresh chunks too
            key = f"w{w}/{i}"
            client.put_object(Bucket="live", Key=key, Body=data)
            with lock:
                written[key] = data
            i += 1

    def garbage_maker() -> None:
        client = srv.client()
        n = 0
        while not stop.is_set():
            bucket = f"junk{n}"
            client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key="x", Body=os.urandom(MiB))
            client.delete_object(Bucket=bucket, Key="x")
            client.delete_bucket(Bucket=bucket)
            n += 1
            time.sleep(0.2)

    def collector() -> None:
        while not stop.is_set():
            gc_runs.append(gc(srv, "--grace-minutes", str(grace_s / 60)))

    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        futures = [ex.submit(writer, w) for w in range(4)]
        futures += [ex.submit(garbage_maker), ex.submit(collector)]
        time.sleep(25)
        stop.set()
        for f in futures:
            f.result()
    assert len(gc_runs) >= 3 and written
    assert sum(r["chunks"] for r in gc_runs) > 0, "gc never freed anything: the test proves nothing"
    gc(srv, "--grace-minutes", str(grace_s / 60))
    for key, data in written.items():
        got = s3.get_object(Bucket="live", Key=key)["Body"].read()
        assert got == data, key
    done = srv.maintenance("fsck")
    assert done.returncode == 0, done.stdout


def test_background_gc_runs_on_its_interval(make_server: Callable[..., LoxoServer]) -> None:
    srv = make_server(extra_args=["--gc-interval-hours", "0.0005"])  # every 1.8 s
    deadline = time.monotonic() + 30
    while "gc freed" not in srv.log_text():
        assert time.monotonic() < deadline, srv.log_text()[-2000:]
        time.sleep(0.2)
    assert "kept" in srv.log_text()
