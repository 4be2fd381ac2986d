"""s3cmd (Debian's /usr/bin/s3cmd) against loxo over HTTP and HTTPS: mb, ls,
put (single and multipart), get, info, sync up and down (with deletions), del,
del --recursive, rb.

s3cmd sends SigV4 with a signed payload hash and no checksums. Its config
points host_base and host_bucket at the server with no `%(bucket)s` in
host_bucket: path-style requests.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import lists_bucket

MiB = 1024 * 1024

S3cmd = Callable[..., Any]


@pytest.fixture
def s3cmd(
    require_tool: Callable[[str], str],
    client_env: Callable[..., dict[str, str]],
    run: Callable[..., Any],
    tmp_path: Path,
) -> Callable[[Any], S3cmd]:
    """s3cmd(server) -> runner; runner("ls", ..., check=True)."""
    binary = require_tool("s3cmd")

    def for_server(server: Any) -> S3cmd:
        host = f"127.0.0.1:{server.port}"
        https = server.ca_bundle is not None
        config = tmp_path / f"s3cfg-{server.port}"
        config.write_text(
            "[default]\n"
            f"access_key = {server.access_key}\n"
            f"secret_key = {server.secret_key}\n"
            f"host_base = {host}\n"
            f"host_bucket = {host}\n"
            "bucket_location = us-east-1\n"
            "signature_v2 = False\n"
            f"use_https = {https}\n"
            f"check_ssl_certificate = {https}\n"
            "check_ssl_hostname = True\n"
            f"ca_certs_file = {server.ca_bundle or ''}\n"
            "multipart_chunk_size_mb = 5\n"
            "progress_meter = False\n"
        )
        config.chmod(0o600)
        env = client_env()

        def runner(*args: Any, check: bool = True) -> Any:
            cmd = [binary, "-c", str(config), "--no-progress", *map(str, args)]
            return run(cmd, env=env, server=server, check=check)

        return runner

    return for_server


def test_s3cmd_round_trip(
    s3cmd: Callable[[Any], S3cmd],
    loxo: Any,
    make_tree: Callable[..., dict[str, bytes]],
    read_tree: Callable[[Path], dict[str, bytes]],
    same_tree: Callable[..., None],
    bucket_objects: Callable[..., dict[str, bytes]],
    tmp_path: Path,
) -> None:
    cli = s3cmd(loxo)
    bucket = f"s3cmd-{uuid.uuid4().hex[:12]}"
    out = cli("mb", f"s3://{bucket}").stdout
    assert f"Bucket 's3://{bucket}/' created" in out, out
    assert lists_bucket(cli("ls").stdout, bucket)

    src = tmp_path / "src"
    files = make_tree(src, big=12 * MiB)  # 3 parts of 5 MiB

    # put / get of one file, multipart
    cli("put", src / "data/big.bin", f"s3://{bucket}/one/big.bin")
    head = loxo.client().head_object(Bucket=bucket, Key="one/big.bin")
    assert head["ContentLength"] == 12 * MiB
    assert head["ETag"].strip('"').endswith("-3"), head
    cli("get", f"s3://{bucket}/one/big.bin", tmp_path / "big.down")
    assert (tmp_path / "big.down").read_bytes() == files["data/big.bin"]
    # a single-part put: s3cmd checks the returned ETag against the file's MD5
    cli("put", src / "docs/readme.md", f"s3://{bucket}/one/readme.md")
    info = cli("info", f"s3://{bucket}/one/readme.md").stdout
    assert hashlib.md5(files["docs/readme.md"]).hexdigest() in info, info

    # sync a tree up, list it, sync it down
    cli("sync", f"{src}/", f"s3://{bucket}/tree/")
    uploaded = bucket_objects(loxo, bucket, "tree/")
    same_tree({k.removeprefix("tree/"): v for k, v in uploaded.items()}, files)
    listing = cli("ls", "--recursive", f"s3://{bucket}/tree/").stdout
    assert f"s3://{bucket}/tree/docs/with space.txt" in listing, listing
    assert f"s3://{bucket}/tree/docs/unicode-\u00e9\u00e8.txt" in listing, listing
    top = cli("ls", f"s3://{bucket}/tree/").stdout
    assert f"DIR  s3://{bucket}/tree/docs/" in top and "top.txt" in top, top

    down = tmp_path / "down"
    cli("sync", f"s3://{bucket}/tree/", f"{down}/")
    same_tree(read_tree(down), files)

    # change the tree; sync with --delete-removed; a second sync transfers nothing
    (src / "top.txt").write_bytes(b"a changed top file\n")
    (src / "docs/with space.txt").unlink()
    (src / "data/new.txt").write_bytes(b"new\n")
    cli("sync", "--delete-removed", f"{src}/", f"s3://{bucket}/tree/")
    uploaded = bucket_objects(loxo, bucket, "tree/")
    same_tree({k.removeprefix("tree/"): v for k, v in uploaded.items()}, read_tree(src))
    again = cli("sync", "--delete-removed", "--stats", f"{src}/", f"s3://{bucket}/tree/").stdout
    assert "upload: '" not in again and "delete: '" not in again, again
    cli("sync", "--delete-removed", f"s3://{bucket}/tree/", f"{down}/")
    same_tree(read_tree(down), read_tree(src))

    # del one, del --recursive, rb
    cli("del", f"s3://{bucket}/one/readme.md")
    assert set(bucket_objects(loxo, bucket, "one/")) == {"one/big.bin"}
    cli("del", "--recursive", "--force", f"s3://{bucket}/")
    assert bucket_objects(loxo, bucket) == {}
    cli("rb", f"s3://{bucket}")
    assert not lists_bucket(cli("ls").stdout, bucket)
