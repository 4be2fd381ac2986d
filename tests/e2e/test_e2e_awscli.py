"""The aws CLI (`aws s3 ...`) against loxo: large copies, listing, sync, removal."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import lists_bucket

MiB = 1024 * 1024


def write_random_file(path: Path, size: int, block: int = 8 * MiB) -> str:
    """Write `size` random bytes in blocks; returns their sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            data = os.urandom(min(block, left))
            f.write(data)
            digest.update(data)
            left -= len(data)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(8 * MiB):
            digest.update(data)
    return digest.hexdigest()


def tree_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(autouse=True)
def _need_aws(require_tool: Any) -> None:
    require_tool("aws")


@pytest.mark.slow
def test_cp_large_file_up_and_down(server: Any, aws_cli: Any, tmp_path: Path) -> None:
    bucket = f"awscli-{os.urandom(4).hex()}"
    out = aws_cli(server, "s3", "mb", f"s3://{bucket}").stdout
    assert f"make_bucket: {bucket}" in out

    source = tmp_path / "big.bin"
    size = 200 * 1000 * 1000
    expected = write_random_file(source, size)
    aws_cli(server, "s3", "cp", str(source), f"s3://{bucket}/data/big.bin", "--only-show-errors")
    source.unlink()  # keep the disk footprint down

    listing = aws_cli(server, "s3", "ls", f"s3://{bucket}/data/").stdout
    assert "big.bin" in listing and str(size) in listing, listing

    target = tmp_path / "down.bin"
    aws_cli(server, "s3", "cp", f"s3://{bucket}/data/big.bin", str(target), "--only-show-errors")
    assert target.stat().st_size == size
    assert sha256_of(target) == expected
    target.unlink()

    buckets = aws_cli(server, "s3", "ls").stdout
    assert lists_bucket(buckets, bucket), buckets

    aws_cli(server, "s3", "rm", f"s3://{bucket}/data/big.bin")
    listing = aws_cli(server, "s3", "ls", f"s3://{bucket}/", "--recursive", check=False).stdout
    assert "big.bin" not in listing
    aws_cli(server, "s3", "rb", f"s3://{bucket}")
    assert not lists_bucket(aws_cli(server, "s3", "ls").stdout, bucket)


@pytest.mark.slow
def test_sync_up_and_down(server: Any, aws_cli: Any, tmp_path: Path) -> None:
    bucket = f"sync-{os.urandom(4).hex()}"
    aws_cli(server, "s3", "mb", f"s3://{bucket}")
    source = tmp_path / "src"
    for i in range(300):
        path = source / f"group{i % 5}" / f"sub{i % 3}" / f"file-{i:03d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"file {i}\n".encode() * (i % 17 + 1) + os.urandom(i % 50))
    (source / "empty.txt").write_bytes(b"")
    (source / "name with spaces+plus.txt").write_bytes(b"spaces")
    expected = tree_of(source)
    assert len(expected) == 302

    aws_cli(server, "s3", "sync", str(source), f"s3://{bucket}/backup", "--only-show-errors")
    listing = aws_cli(server, "s3", "ls", f"s3://{bucket}/backup/", "--recursive").stdout
    assert len(listing.strip().splitlines()) == 302, listing

    # a second sync has nothing to do
    again = aws_cli(server, "s3", "sync", str(source), f"s3://{bucket}/backup").stdout
    assert "upload:" not in again, again

    target = tmp_path / "dst"
    aws_cli(server, "s3", "sync", f"s3://{bucket}/backup", str(target), "--only-show-errors")
    assert tree_of(target) == expected

    # only what changed goes up again
    (source / "group0" / "sub0" / "file-000.txt").write_bytes(b"changed and longer")
    changed = aws_cli(server, "s3", "sync", str(source), f"s3://{bucket}/backup").stdout
    uploads = [line for line in changed.splitlines() if line.startswith("upload:")]
    assert len(uploads) == 1 and "file-000.txt" in uploads[0], changed

    aws_cli(server, "s3", "rm", f"s3://{bucket}/backup", "--recursive", "--only-show-errors")
    listing = aws_cli(server, "s3", "ls", f"s3://{bucket}/", "--recursive", check=False)
    assert listing.stdout.strip() == "", listing.stdout
    aws_cli(server, "s3", "rb", f"s3://{bucket}")


def test_s3api_commands(server: Any, aws_cli: Any, tmp_path: Path) -> None:
    import json

    bucket = f"s3api-{os.urandom(4).hex()}"
    aws_cli(server, "s3api", "create-bucket", "--bucket", bucket)
    body = tmp_path / "body.txt"
    body.write_bytes(b"hello from s3api")
    put = json.loads(
        aws_cli(
            server,
            "s3api",
            "put-object",
            "--bucket",
            bucket,
            "--key",
            "k",
            "--body",
            str(body),
            "--metadata",
            "a=b",
            "--content-type",
            "text/plain",
        ).stdout
    )
    assert put["ETag"] == f'"{hashlib.md5(b"hello from s3api").hexdigest()}"'
    assert len(put["VersionId"]) == 32
    head = json.loads(
        aws_cli(server, "s3api", "head-object", "--bucket", bucket, "--key", "k").stdout
    )
    assert head["Metadata"] == {"a": "b"}
    assert head["ContentType"] == "text/plain"
    assert head["VersionId"] == put["VersionId"]
    snap = f"{bucket}.{put['VersionId']}"
    listed = json.loads(aws_cli(server, "s3api", "list-objects-v2", "--bucket", snap).stdout)
    assert [o["Key"] for o in listed["Contents"]] == ["k"]
    missing = aws_cli(
        server, "s3api", "head-object", "--bucket", bucket, "--key", "nope", check=False
    )
    assert missing.returncode != 0 and "404" in missing.stderr
