"""The trash, end to end: deleted repos and branches come back.

A real server; S3 through boto3 and the aws CLI, the `loxo` CLI as a
subprocess, the control API through the Python client. Each test checks
bytes read back, history (commit ids) and exit codes, not just answers.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from gateway.client import Client, LoxoError
from tests.conftest import LoxoServer, aws_cli
from tests.conftest import loxo_cli as run_loxo

MiB = 1024 * 1024


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def loxo(server: LoxoServer, tmp: Path, *args: str, code: int = 0) -> str:
    """`loxo ARGS` against `server`; checks the exit code, returns stdout+stderr."""
    env = {
        "LOXO_CONFIG": str(tmp / "cfg.json"),
        "LOXO_ENDPOINT": server.endpoint,
        "LOXO_ACCESS_KEY": server.access_key or "",
        "LOXO_SECRET_KEY": server.secret_key or "",
    }
    proc: subprocess.CompletedProcess[str] = run_loxo(*args, env=env)
    assert proc.returncode == code, (
        f"`loxo {' '.join(args)}` exited {proc.returncode}, expected {code}\n"
        f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    )
    if code:
        assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout + proc.stderr


def api(server: LoxoServer) -> Client:
    return Client(server.endpoint, server.access_key or "", server.secret_key or "")


def objects(s3: Any, bucket: str) -> dict[str, bytes]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def no_bucket(s3: Any, bucket: str) -> bool:
    try:
        s3.list_objects_v2(Bucket=bucket)
    except ClientError as exc:
        return bool(exc.response["Error"]["Code"] == "NoSuchBucket")
    return False


def log_ids(client: Client, repo: str, ref: str | None = None) -> list[str]:
    return [c.id for c in client.log(repo, ref)]


def chunk_bytes(server: LoxoServer) -> int:
    assert server.data_dir is not None
    root = server.data_dir / "chunks"
    return sum(
        p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
    )


def gc(server: LoxoServer) -> dict[str, Any]:
    done = server.maintenance("gc", "--json", "--grace-minutes", "0")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_branch_delete_asks_for_yes_then_restores(server: LoxoServer, tmp_path: Path) -> None:
    s3 = server.client()
    repo = unique("tb")
    s3.create_bucket(Bucket=repo)
    s3.put_object(Bucket=repo, Key="base.txt", Body=b"base")
    loxo(server, tmp_path, "branch", "create", f"{repo}@dev")
    dev = {f"d{i}.bin": random.Random(i).randbytes(40_000 + i) for i in range(2)}
    for key, data in dev.items():
        s3.put_object(Bucket=f"{repo}.dev", Key=key, Body=data)
    with api(server) as client:
        history = log_ids(client, repo, "dev")

        # Two commits only dev has: refused without --yes (exit 2), kept.
        said = loxo(server, tmp_path, "branch", "delete", f"{repo}@dev", code=2)
        assert "2 commits" in said and "--yes" in said, said
        assert objects(s3, f"{repo}.dev") == {"base.txt": b"base", **dev}
        with pytest.raises(LoxoError) as refused:
            client.delete_branch(repo, "dev", require_merged=True)
        assert refused.value.code == "unmerged_commits" and refused.value.details["commits"] == 2

        # A branch with nothing of its own needs no --yes.
        loxo(server, tmp_path, "branch", "create", f"{repo}@same")
        loxo(server, tmp_path, "branch", "delete", f"{repo}@same")

        said = loxo(server, tmp_path, "branch", "delete", f"{repo}@dev", "--yes")
        assert "in the trash until" in said, said
        assert no_bucket(s3, f"{repo}.dev")
        trash = json.loads(loxo(server, tmp_path, "branch", "list", repo, "--trash", "-o", "json"))
        dev_entry = next(e for e in trash if e["name"] == "dev")
        assert dev_entry["kind"] == "branch" and dev_entry["head"] == history[0]
        assert dev_entry["expires"] > dev_entry["deleted"]

        said = loxo(server, tmp_path, "branch", "restore", f"{repo}@dev")
        assert f"restored branch {repo}@dev" in said
        assert objects(s3, f"{repo}.dev") == {"base.txt": b"base", **dev}
        assert log_ids(client, repo, "dev") == history
        assert not [e for e in client.list_trash(repo) if e.name == "dev"]
        # Restoring again: nothing left in the trash (exit 3).
        assert "trash_not_found" in loxo(
            server, tmp_path, "branch", "restore", f"{repo}@dev", code=3
        )

        # Name taken again meanwhile: a clear conflict (exit 4), or --as.
        client.delete_branch(repo, "dev")
        s3.create_bucket(Bucket=f"{repo}.dev")  # a new, different dev
        s3.put_object(Bucket=f"{repo}.dev", Key="new.txt", Body=b"new")
        said = loxo(server, tmp_path, "branch", "restore", f"{repo}@dev", code=4)
        assert "branch_exists" in said and "another name" in said, said
        restored = client.restore_branch(repo, "dev", as_name="dev-old")
        assert restored.head == history[0]
        assert objects(s3, f"{repo}.dev-old") == {"base.txt": b"base", **dev}
        assert objects(s3, f"{repo}.dev") == {"base.txt": b"base", "new.txt": b"new"}


def test_rb_force_then_repo_restore_brings_everything_back(
    server: LoxoServer, tmp_path: Path
) -> None:
    s3 = server.client()
    repo = unique("trb")
    s3.create_bucket(Bucket=repo)
    main = {f"m/{i}.bin": random.Random(100 + i).randbytes(30_000 * (i + 1)) for i in range(3)}
    for key, data in main.items():
        s3.put_object(Bucket=repo, Key=key, Body=data)
    with api(server) as client:
        client.create_tag(repo, "v1")
        client.create_branch(repo, "dev")
        s3.put_object(Bucket=f"{repo}.dev", Key="dev.txt", Body=b"dev only")
        main_log, dev_log = log_ids(client, repo), log_ids(client, repo, "dev")

        aws_cli(server, "s3", "rb", "--force", f"s3://{repo}.dev")
        aws_cli(server, "s3", "rb", "--force", f"s3://{repo}")
        assert no_bucket(s3, repo) and no_bucket(s3, f"{repo}.v1")
        with pytest.raises(LoxoError):
            client.describe_repo(repo)
        listed = loxo(server, tmp_path, "repo", "list", "--trash")
        assert repo in listed, listed
        entry = next(e for e in client.list_trash(repo) if e.kind == "repo")
        assert entry.tags == ("v1",) and entry.branches == ("main",)

        said = loxo(server, tmp_path, "repo", "restore", repo)
        assert f"restored repo {repo}" in said
        # main: its history is back, rb's deletes on top of it.
        assert log_ids(client, repo)[-len(main_log) :] == main_log
        assert objects(s3, f"{repo}.v1") == main  # the tag, byte-exact
        assert objects(s3, f"{repo}.{main_log[0]}") == main  # a snapshot of the old head
        # dev went to the trash before the repo; it follows the repo back.
        loxo(server, tmp_path, "branch", "restore", f"{repo}@dev")
        assert log_ids(client, repo, "dev")[-len(dev_log) :] == dev_log
        assert objects(s3, f"{repo}.{dev_log[0]}") == {**main, "dev.txt": b"dev only"}


def test_a_new_repo_of_a_trashed_name_starts_empty(server: LoxoServer, tmp_path: Path) -> None:
    s3 = server.client()
    repo = unique("tnew")
    s3.create_bucket(Bucket=repo)
    s3.put_object(Bucket=repo, Key="old.txt", Body=b"old history")
    with api(server) as client:
        old_head = log_ids(client, repo)[0]
        client.delete_repo(repo, confirm=True)

        s3.create_bucket(Bucket=repo)  # S3 CreateBucket: allowed, and empty
        assert objects(s3, repo) == {}
        with pytest.raises(LoxoError) as empty:
            log_ids(client, repo)  # no commits at all
        assert empty.value.code == "ref_not_found"
        assert no_bucket(s3, f"{repo}.{old_head}")  # old commits are not its commits
        with pytest.raises(LoxoError) as gone:
            client.inspect(repo, old_head)
        assert gone.value.status == 404
        with pytest.raises(LoxoError):
            client.create_branch(repo, "back", old_head)

        said = loxo(server, tmp_path, "repo", "restore", repo, code=4)
        assert "repo_exists" in said and "another name" in said, said
        s3.put_object(Bucket=repo, Key="new.txt", Body=b"new")
        old = unique("told")
        loxo(server, tmp_path, "repo", "restore", repo, "--as", old)
        assert objects(s3, old) == {"old.txt": b"old history"}
        assert log_ids(client, old) == [old_head]
        assert objects(s3, repo) == {"new.txt": b"new"}


def test_trash_days_zero_deletes_at_once(
    make_server: Callable[..., LoxoServer], tmp_path: Path
) -> None:
    srv = make_server(extra_args=["--gc-interval-hours", "0", "--trash-days", "0"])
    s3 = srv.client()
    s3.create_bucket(Bucket="gone")
    s3.put_object(Bucket="gone", Key="k", Body=b"v")
    with api(srv) as client:
        client.create_branch("gone", "dev")
        loxo(srv, tmp_path, "branch", "delete", "gone@dev")
        said = loxo(srv, tmp_path, "repo", "delete", "gone", "--yes")
        assert "for good" in said, said
        assert "trash_not_found" in loxo(srv, tmp_path, "repo", "restore", "gone", code=3)
        s3.create_bucket(Bucket="gone")
        said = loxo(srv, tmp_path, "branch", "restore", "gone@dev", code=3)
        assert "trash_not_found" in said
        assert list(client.list_trash()) == []


def test_gc_keeps_trashed_content_until_it_expires(
    make_server: Callable[..., LoxoServer], tmp_path: Path
) -> None:
    retention = 20.0  # seconds: --trash-days is fractional
    srv = make_server(
        extra_args=["--gc-interval-hours", "0", "--trash-days", f"{retention / 86400:.8f}"]
    )
    s3 = srv.client()
    bodies = {}
    for name in ("keepme", "expire"):
        s3.create_bucket(Bucket=name)
        bodies[name] = random.Random(name).randbytes(3 * MiB)
        s3.put_object(Bucket=name, Key="big.bin", Body=bodies[name])
    held = chunk_bytes(srv)
    assert held >= 6 * MiB
    with api(srv) as client:
        deleted = time.monotonic()
        client.delete_repo("keepme", confirm=True)
        client.delete_repo("expire", confirm=True)

        gc(srv)  # grace 0: only the trash keeps them
        assert chunk_bytes(srv) == held, "gc freed what the trash holds"
        client.restore_repo("keepme")
        assert s3.get_object(Bucket="keepme", Key="big.bin")["Body"].read() == bodies["keepme"]
        assert time.monotonic() - deleted < retention, "too slow to prove anything"

        time.sleep(max(0.0, deleted + retention + 1 - time.monotonic()))
        assert [e.name for e in client.list_trash()] == []  # expired: not listed
        gc(srv)
        left = chunk_bytes(srv)
        assert held - left >= 2.9 * MiB, f"the expired repo's {held - left} bytes freed"
        assert s3.get_object(Bucket="keepme", Key="big.bin")["Body"].read() == bodies["keepme"]
        with pytest.raises(LoxoError) as gone:
            client.restore_repo("expire")
        assert gone.value.code == "trash_not_found"
    assert srv.maintenance("fsck").returncode == 0
