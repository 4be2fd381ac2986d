"""s3fs-fuse (Debian's `s3fs`, a FUSE mount) against loxo over HTTP and HTTPS:
mount a bucket, write a tree (one file large enough for a multipart upload),
unmount, remount, read it back, rename, `rm -r`.

Needs /dev/fuse and root (as CI has). Over HTTPS s3fs-fuse trusts the test CA
through the CURL_CA_BUNDLE environment variable (s3fs reads it to locate its
CA bundle and hands it to libcurl), set in the mount process's environment;
without it the mount fails (CURLE_SSL_CACERT). s3fs 1.90 (Debian 12) applies
the bundle only to curl handles it re-makes: its first request, the bucket
check, fails with CURLE_SSL_CACERT and succeeds on the retry, so `retries`
must stay >= 2.
It signs with SigV4 and a signed payload hash, probes `dir_$folder$` and
`dir/`, creates `dir/` marker objects, stores mode/uid/gid/mtime as
x-amz-meta-*, and renames by CopyObject + DeleteObject.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

MiB = 1024 * 1024


@pytest.fixture
def mount(
    require_tool: Callable[[str], str],
    fail_or_skip: Callable[[str], None],
    client_env: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> Iterator[Callable[[Any, str, Path], None]]:
    """mount(server, bucket, mountpoint); unmount(mountpoint) is `mount.unmount`.
    Every mount still up at teardown is unmounted and its s3fs process ended."""
    s3fs = require_tool("s3fs")
    if not os.path.exists("/dev/fuse"):
        fail_or_skip("/dev/fuse is missing: this machine cannot mount FUSE file systems")
    if os.geteuid() != 0:
        fail_or_skip("mounting with s3fs-fuse needs root here")
    umount = shutil.which("fusermount3") or shutil.which("fusermount") or shutil.which("umount")
    if umount is None:
        fail_or_skip("no fusermount/umount to unmount s3fs")
    assert umount is not None
    running: dict[Path, subprocess.Popen[bytes]] = {}

    def unmount_args(mountpoint: Path, lazy: bool = False) -> list[str]:
        if "fusermount" in Path(umount).name:
            return [umount, "-u", *(["-z"] if lazy else []), str(mountpoint)]
        return [umount, *(["-l"] if lazy else []), str(mountpoint)]

    logs: dict[Path, Path] = {}

    def do_mount(server: Any, bucket: str, mountpoint: Path) -> None:
        passwd = tmp_path / "passwd-s3fs"
        passwd.write_text(f"{server.access_key}:{server.secret_key}\n")
        passwd.chmod(0o600)
        mountpoint.mkdir(parents=True, exist_ok=True)
        log = tmp_path / f"s3fs-{len(logs)}.log"
        logs[mountpoint] = log
        cmd = [
            s3fs, bucket, str(mountpoint), "-f",
            "-o", f"passwd_file={passwd}",
            "-o", f"url={server.endpoint}",
            "-o", "use_path_request_style",
            "-o", "endpoint=us-east-1",
            "-o", "retries=2",  # >= 2: see the module docstring (HTTPS)
            "-o", "connect_timeout=10",
            "-o", "readwrite_timeout=60",
            "-o", "multipart_size=5",
            "-o", "dbglevel=warn",
        ]  # fmt: skip
        env = client_env()
        env.pop("CURL_CA_BUNDLE", None)
        if server.ca_bundle is not None:
            env["CURL_CA_BUNDLE"] = str(server.ca_bundle)
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        running[mountpoint] = proc
        deadline = time.monotonic() + 30
        while not os.path.ismount(mountpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"s3fs did not mount (exit {proc.poll()}):\n{log.read_text()[-3000:]}",
                    pytrace=False,
                )
            time.sleep(0.1)

    def do_unmount(mountpoint: Path) -> None:
        proc = running.pop(mountpoint)
        done = subprocess.run(unmount_args(mountpoint), capture_output=True, text=True, timeout=120)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        assert done.returncode == 0, f"unmount failed: {done.stderr}"
        assert not os.path.ismount(mountpoint)
        assert proc.returncode == 0, (
            f"s3fs exited {proc.returncode}:\n{logs[mountpoint].read_text()}"
        )

    do_mount.unmount = do_unmount  # type: ignore[attr-defined]
    yield do_mount
    for mountpoint, proc in list(running.items()):
        subprocess.run(unmount_args(mountpoint, lazy=True), capture_output=True, timeout=60)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_s3fs_fuse_mount_round_trip(
    mount: Any,
    loxo: Any,
    make_bucket: Callable[..., str],
    make_tree: Callable[..., dict[str, bytes]],
    read_tree: Callable[[Path], dict[str, bytes]],
    same_tree: Callable[..., None],
    bucket_objects: Callable[..., dict[str, bytes]],
    tmp_path: Path,
) -> None:
    bucket = make_bucket(loxo, "fuse")
    files = make_tree(tmp_path / "src", big=12 * MiB)
    mnt = tmp_path / "mnt"

    mount(loxo, bucket, mnt)
    shutil.copytree(tmp_path / "src", mnt / "tree")
    (mnt / "emptydir").mkdir()
    assert read_tree(mnt / "tree") == files
    mount.unmount(mnt)

    stored = bucket_objects(loxo, bucket)
    objects = {k.removeprefix("tree/"): v for k, v in stored.items()
               if k.startswith("tree/") and not k.endswith("/")}  # fmt: skip
    same_tree(objects, files)
    # directory markers are empty objects
    assert all(v == b"" for k, v in stored.items() if k.endswith("/")), sorted(stored)
    assert "emptydir/" in stored, sorted(stored)
    head = loxo.client().head_object(Bucket=bucket, Key="tree/data/big.bin")
    assert "-" in head["ETag"], head  # uploaded in 5 MiB parts

    mount(loxo, bucket, mnt)
    same_tree(read_tree(mnt / "tree"), files)
    assert sorted(os.listdir(mnt)) == ["emptydir", "tree"]
    assert sorted(os.listdir(mnt / "tree" / "docs")) == sorted(
        Path(k).name for k in files if k.startswith("docs/")
    )
    with open(mnt / "tree" / "data/big.bin", "rb") as f:
        f.seek(7 * MiB + 3)
        assert f.read(1000) == files["data/big.bin"][7 * MiB + 3 : 7 * MiB + 1003]

    # overwrite in place and append
    (mnt / "tree" / "top.txt").write_bytes(b"rewritten\n")
    with open(mnt / "tree" / "top.txt", "ab") as f:
        f.write(b"appended\n")
    assert (mnt / "tree" / "top.txt").read_bytes() == b"rewritten\nappended\n"

    # rename (CopyObject + DeleteObject)
    os.rename(mnt / "tree" / "docs" / "readme.md", mnt / "tree" / "docs" / "README.md")
    assert (mnt / "tree" / "docs" / "README.md").read_bytes() == files["docs/readme.md"]

    subprocess.run(["rm", "-r", str(mnt / "tree")], check=True, timeout=120)
    assert not (mnt / "tree").exists()
    assert os.listdir(mnt) == ["emptydir"]
    os.rmdir(mnt / "emptydir")
    mount.unmount(mnt)
    assert bucket_objects(loxo, bucket) == {}


def test_s3fs_fuse_mounts_a_branch(
    mount: Any, loxo: Any, make_bucket: Callable[..., str], tmp_path: Path
) -> None:
    """Mounting `repo.branch` (a dotted bucket name) writes to that branch only."""
    repo = make_bucket(loxo, "fusebr")
    branch = f"{repo}.dev"
    loxo.client().create_bucket(Bucket=branch)
    mnt = tmp_path / f"mnt-{uuid.uuid4().hex[:6]}"
    mount(loxo, branch, mnt)
    (mnt / "on-dev.txt").write_bytes(b"only on dev\n")
    mount.unmount(mnt)
    s3 = loxo.client()
    assert s3.get_object(Bucket=branch, Key="on-dev.txt")["Body"].read() == b"only on dev\n"
    assert s3.list_objects_v2(Bucket=repo).get("KeyCount") == 0
