"""aws CLI v2 (Debian's /usr/bin/aws) and v1 (PyPI `awscli`, `python -m awscli`)
against loxo over HTTP and HTTPS: cp (single and multipart, stdin/stdout), cp
--recursive, sync both ways with --delete, mv, rm --recursive, rb, and
s3api list-object-versions (mv within the server and list-object-versions run
over both HTTP and HTTPS).

On the wire (shared/docs/s3-clients.md): v2 2.9 sends a signed payload hash +
Content-MD5 over HTTP and UNSIGNED-PAYLOAD over HTTPS; v1 (botocore >= 1.36)
sends x-amz-checksum-crc32 over HTTP and aws-chunked bodies with a CRC trailer
over HTTPS.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import lists_bucket

MiB = 1024 * 1024
REGION = "us-east-1"

AwsRunner = Callable[..., Any]


@pytest.fixture(params=["v2", "v1"])
def aws(
    request: pytest.FixtureRequest,
    require_tool: Callable[[str], str],
    require_module: Callable[[str], Any],
    client_env: Callable[..., dict[str, str]],
    run: Callable[..., Any],
    tmp_path: Path,
) -> Callable[[Any], AwsRunner]:
    """aws(server) -> runner; runner("s3", "ls", ..., input=None, check=True)."""
    if request.param == "v2":
        base = [require_tool("aws")]
    else:
        require_module("awscli")
        base = [sys.executable, "-m", "awscli"]
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\nregion = {REGION}\n")
    credentials = tmp_path / "aws-credentials"
    credentials.write_text("")

    def for_server(server: Any) -> AwsRunner:
        env = client_env(
            AWS_ACCESS_KEY_ID=server.access_key,
            AWS_SECRET_ACCESS_KEY=server.secret_key,
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE=str(config),
            AWS_SHARED_CREDENTIALS_FILE=str(credentials),
        )
        # v1 must not pick up the Debian v2's Python packages and vice versa
        env.pop("PYTHONPATH", None)
        if server.ca_bundle is not None:
            env["AWS_CA_BUNDLE"] = str(server.ca_bundle)

        def runner(*args: Any, check: bool = True, input: str | None = None) -> Any:
            cmd = [*base, "--endpoint-url", server.endpoint, *map(str, args)]
            return run(cmd, env=env, server=server, check=check, input=input)

        return runner

    return for_server


def bucket_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def test_aws_cli_round_trip(
    aws: Callable[[Any], AwsRunner],
    server: Any,
    make_tree: Callable[..., dict[str, bytes]],
    read_tree: Callable[[Path], dict[str, bytes]],
    same_tree: Callable[..., None],
    bucket_objects: Callable[..., dict[str, bytes]],
    tmp_path: Path,
) -> None:
    cli = aws(server)
    bucket = bucket_name("awscli")
    assert f"make_bucket: {bucket}" in cli("s3", "mb", f"s3://{bucket}").stdout
    assert lists_bucket(cli("s3", "ls").stdout, bucket)

    src = tmp_path / "src"
    files = make_tree(src, big=9 * MiB)  # > 8 MiB: the CLI uploads it in parts

    # one file up and down, multipart
    cli("s3", "cp", "--only-show-errors", src / "data/big.bin", f"s3://{bucket}/one/big.bin")
    cli("s3", "cp", "--only-show-errors", f"s3://{bucket}/one/big.bin", tmp_path / "big.down")
    assert (tmp_path / "big.down").read_bytes() == files["data/big.bin"]
    head = json.loads(
        cli("s3api", "head-object", "--bucket", bucket, "--key", "one/big.bin").stdout
    )
    assert head["ContentLength"] == 9 * MiB
    assert head["ETag"].strip('"').endswith("-2"), head  # 8 MiB parts

    # a directory tree
    cli("s3", "cp", "--only-show-errors", "--recursive", src, f"s3://{bucket}/tree/")
    uploaded = bucket_objects(server, bucket, "tree/")
    same_tree({k.removeprefix("tree/"): v for k, v in uploaded.items()}, files)
    listing = cli("s3", "ls", "--recursive", f"s3://{bucket}/tree/").stdout
    assert "tree/docs/with space.txt" in listing and "tree/data/b/deep/three.bin" in listing
    top = cli("s3", "ls", f"s3://{bucket}/tree/").stdout
    assert "PRE docs/" in top and "PRE data/" in top and "top.txt" in top, top

    # sync down into an empty directory, then again: nothing to do
    down = tmp_path / "down"
    cli("s3", "sync", "--only-show-errors", f"s3://{bucket}/tree/", down)
    same_tree(read_tree(down), files)
    again = cli("s3", "sync", f"s3://{bucket}/tree/", down).stdout
    assert again.strip() == "", again

    # change the local tree, sync it up with --delete
    (src / "top.txt").write_bytes(b"changed, and longer than before\n")
    (src / "docs/with space.txt").unlink()
    (src / "data/new.txt").write_bytes(b"new file\n")
    out = cli("s3", "sync", "--delete", src, f"s3://{bucket}/tree/").stdout
    assert "delete: s3://" in out and "docs/with space.txt" in out, out
    uploaded = bucket_objects(server, bucket, "tree/")
    same_tree({k.removeprefix("tree/"): v for k, v in uploaded.items()}, read_tree(src))
    assert cli("s3", "sync", "--delete", src, f"s3://{bucket}/tree/").stdout.strip() == ""

    # ... and back down with --delete
    out = cli("s3", "sync", "--delete", f"s3://{bucket}/tree/", down).stdout
    same_tree(read_tree(down), read_tree(src))

    # stdin and stdout
    body = b"from stdin\n" * 1000
    (tmp_path / "stdin.txt").write_bytes(body)
    cli("s3", "cp", "--only-show-errors", "-", f"s3://{bucket}/stream.txt", input=body.decode())
    assert bucket_objects(server, bucket, "stream.txt") == {"stream.txt": body}
    out = cli("s3", "cp", f"s3://{bucket}/tree/top.txt", "-").stdout
    assert out == (src / "top.txt").read_text()

    # mv from local: upload, then the local file is gone
    cli("s3", "mv", "--only-show-errors", tmp_path / "stdin.txt", f"s3://{bucket}/moved.txt")
    assert not (tmp_path / "stdin.txt").exists()
    assert bucket_objects(server, bucket, "moved.txt") == {"moved.txt": body}
    # mv down: download, then the object is gone
    cli("s3", "mv", "--only-show-errors", f"s3://{bucket}/moved.txt", tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_bytes() == body
    assert bucket_objects(server, bucket, "moved.txt") == {}

    # rm --recursive of a prefix, then of everything; rb
    cli("s3", "rm", "--only-show-errors", "--recursive", f"s3://{bucket}/tree/")
    assert bucket_objects(server, bucket, "tree/") == {}
    assert set(bucket_objects(server, bucket)) == {"one/big.bin", "stream.txt"}
    cli("s3", "rm", "--only-show-errors", "--recursive", f"s3://{bucket}")
    assert bucket_objects(server, bucket) == {}
    cli("s3", "rb", f"s3://{bucket}")
    assert not lists_bucket(cli("s3", "ls").stdout, bucket)


def test_aws_cli_over_https(
    aws: Callable[[Any], AwsRunner],
    https_server: Any,
    make_tree: Callable[..., dict[str, bytes]],
    read_tree: Callable[[Path], dict[str, bytes]],
    same_tree: Callable[..., None],
    bucket_objects: Callable[..., dict[str, bytes]],
    tmp_path: Path,
) -> None:
    """The same transfers over HTTPS, trusting the test CA (AWS_CA_BUNDLE)."""
    cli = aws(https_server)
    bucket = bucket_name("awstls")
    cli("s3", "mb", f"s3://{bucket}")
    src = tmp_path / "src"
    files = make_tree(src, big=9 * MiB)
    cli("s3", "cp", "--only-show-errors", "--recursive", src, f"s3://{bucket}/tree/")
    uploaded = bucket_objects(https_server, bucket, "tree/")
    same_tree({k.removeprefix("tree/"): v for k, v in uploaded.items()}, files)
    down = tmp_path / "down"
    cli("s3", "sync", "--only-show-errors", f"s3://{bucket}/tree/", down)
    same_tree(read_tree(down), files)
    (src / "docs/with space.txt").unlink()
    (src / "data/new.txt").write_bytes(b"new file\n")
    cli("s3", "sync", "--only-show-errors", "--delete", src, f"s3://{bucket}/tree/")
    uploaded = bucket_objects(https_server, bucket, "tree/")
    same_tree({k.removeprefix("tree/"): v for k, v in uploaded.items()}, read_tree(src))

    # mv up from a local file, then back down
    body = b"moved over TLS\n" * 500
    (tmp_path / "mv.txt").write_bytes(body)
    cli("s3", "mv", "--only-show-errors", tmp_path / "mv.txt", f"s3://{bucket}/moved.txt")
    assert not (tmp_path / "mv.txt").exists()
    assert bucket_objects(https_server, bucket, "moved.txt") == {"moved.txt": body}
    cli("s3", "mv", "--only-show-errors", f"s3://{bucket}/moved.txt", tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_bytes() == body
    assert bucket_objects(https_server, bucket, "moved.txt") == {}

    cli("s3", "rm", "--only-show-errors", "--recursive", f"s3://{bucket}/tree/")
    assert bucket_objects(https_server, bucket) == {}


def test_aws_s3_mv_and_cp_within_the_server(
    aws: Callable[[Any], AwsRunner],
    loxo: Any,
    make_tree: Callable[..., dict[str, bytes]],
    same_tree: Callable[..., None],
    bucket_objects: Callable[..., dict[str, bytes]],
    tmp_path: Path,
) -> None:
    """s3 -> s3 cp and mv are CopyObject (UploadPartCopy above 8 MiB) + DeleteObject."""
    cli = aws(loxo)
    bucket = bucket_name("awsmv")
    cli("s3", "mb", f"s3://{bucket}")
    files = make_tree(tmp_path / "src", big=9 * MiB)
    cli("s3", "cp", "--only-show-errors", "--recursive", tmp_path / "src", f"s3://{bucket}/a/")

    cli("s3", "cp", "--only-show-errors", f"s3://{bucket}/a/top.txt", f"s3://{bucket}/copy.txt")
    assert bucket_objects(loxo, bucket, "copy.txt") == {"copy.txt": files["top.txt"]}

    cli("s3", "mv", "--only-show-errors", "--recursive", f"s3://{bucket}/a/", f"s3://{bucket}/b/")
    assert bucket_objects(loxo, bucket, "a/") == {}
    moved = bucket_objects(loxo, bucket, "b/")
    same_tree({k.removeprefix("b/"): v for k, v in moved.items()}, files)


def test_aws_s3api_list_object_versions(
    aws: Callable[[Any], AwsRunner], loxo: Any, tmp_path: Path
) -> None:
    cli = aws(loxo)
    bucket = bucket_name("awsver")
    cli("s3", "mb", f"s3://{bucket}")
    ids = []
    for i in range(3):
        body = tmp_path / f"v{i}.txt"
        body.write_bytes(f"version {i}\n".encode())
        out = cli("s3api", "put-object", "--bucket", bucket, "--key", "doc.txt", "--body", body)
        ids.append(json.loads(out.stdout)["VersionId"])
    cli("s3api", "put-object", "--bucket", bucket, "--key", "other.txt", "--body", body)

    out = cli("s3api", "list-object-versions", "--bucket", bucket, "--prefix", "doc.txt")
    versions = json.loads(out.stdout)["Versions"]
    assert [v["Key"] for v in versions] == ["doc.txt"] * 3, versions
    assert [v["VersionId"] for v in versions] == ids[::-1], versions  # newest first
    assert [v["IsLatest"] for v in versions] == [True, False, False], versions
    assert [v["Size"] for v in versions] == [len("version 0\n")] * 3

    # a listed version reads back as it was written
    target = tmp_path / "got.txt"
    cli(
        "s3api", "get-object", "--bucket", bucket, "--key", "doc.txt",
        "--version-id", versions[-1]["VersionId"], target,
    )  # fmt: skip
    assert target.read_bytes() == b"version 0\n"
