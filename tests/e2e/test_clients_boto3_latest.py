"""The newest boto3 release against loxo, over HTTP and HTTPS.

The test venv holds an older boto3 (aioboto3 pins aiobotocore, which pins
botocore), so `./dev test` builds a second venv, .venv-boto3, with the same
interpreter and only the newest boto3. This test runs a scenario script (below)
with that venv's python: put_object (over HTTPS an aws-chunked body with a CRC
trailer, checked on the wire with a botocore event hook), upload_file and
download_file of ~12 MiB in parts, copy_object, delete_objects,
list_object_versions, a presigned GET and get_object with ChecksumMode
ENABLED, all byte-exact. A missing .venv-boto3 fails in CI and skips elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import REPO_ROOT

VENV_PYTHON = REPO_ROOT / ".venv-boto3" / "bin" / "python"
MIN_VERSION = (1, 44)

SCENARIO = r"""
import hashlib
import json
import os
import ssl
import sys
import urllib.request

import boto3
import botocore
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

MiB = 1024 * 1024
endpoint = os.environ["LOXO_TEST_ENDPOINT"]
bucket = os.environ["LOXO_TEST_BUCKET"]
ca = os.environ.get("LOXO_TEST_CA") or None
work = os.environ["LOXO_TEST_WORKDIR"]
https = endpoint.startswith("https://")
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id=os.environ["LOXO_TEST_ACCESS_KEY"],
    aws_secret_access_key=os.environ["LOXO_TEST_SECRET_KEY"],
    verify=ca,
    config=Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 3, "mode": "standard"},
    ),
)
report = {"boto3": boto3.__version__, "botocore": botocore.__version__}

sent = {}
def capture(request, **kwargs):
    sent[request.method + " " + request.url.split("?")[0].rsplit("/", 1)[-1]] = {
        k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()
    }
s3.meta.events.register("before-send.s3.PutObject", capture)

def rnd(n, tag):
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha512(f"{tag}/{i}".encode()).digest()
        i += 1
    return bytes(out[:n])

# put_object: default flexible checksums (CRC32)
body = rnd(300_000, "put")
put = s3.put_object(Bucket=bucket, Key="put.bin", Body=body)
headers = sent["PUT put.bin"]
report["put_headers"] = {k: headers.get(k) for k in (
    "x-amz-content-sha256", "content-encoding", "x-amz-trailer",
    "x-amz-decoded-content-length", "x-amz-checksum-crc32", "x-amz-sdk-checksum-algorithm",
)}
if https:
    assert headers["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER", headers
    assert headers.get("x-amz-trailer") == "x-amz-checksum-crc32", headers
    assert headers.get("x-amz-decoded-content-length") == str(len(body)), headers
else:
    assert headers.get("x-amz-checksum-crc32"), headers
assert put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest(), put
assert put.get("ChecksumCRC32"), put
got = s3.get_object(Bucket=bucket, Key="put.bin")
assert got["Body"].read() == body

# get with ChecksumMode ENABLED: the stored CRC32 comes back (and botocore verifies it)
got = s3.get_object(Bucket=bucket, Key="put.bin", ChecksumMode="ENABLED")
assert got["Body"].read() == body
assert got.get("ChecksumCRC32") == put["ChecksumCRC32"], (got.get("ChecksumCRC32"), put)
head = s3.head_object(Bucket=bucket, Key="put.bin", ChecksumMode="ENABLED")
assert head.get("ChecksumCRC32") == put["ChecksumCRC32"], head

# upload_file / download_file, multipart (5 MiB parts)
big = rnd(12 * MiB + 12345, "big")
src = os.path.join(work, "big.src")
dst = os.path.join(work, "big.dst")
with open(src, "wb") as f:
    f.write(big)
transfer = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=5 * MiB)
s3.upload_file(src, bucket, "dir/big.bin", Config=transfer)
head = s3.head_object(Bucket=bucket, Key="dir/big.bin")
assert head["ContentLength"] == len(big), head
assert head["ETag"].strip('"').endswith("-3"), head
s3.download_file(bucket, "dir/big.bin", dst, Config=transfer)
with open(dst, "rb") as f:
    assert f.read() == big
got = s3.get_object(Bucket=bucket, Key="dir/big.bin", Range="bytes=7340032-7345031")
assert got["Body"].read() == big[7340032:7345032]

# copy_object
copy = s3.copy_object(
    Bucket=bucket, Key="copy.bin", CopySource={"Bucket": bucket, "Key": "put.bin"}
)
assert copy["CopyObjectResult"]["ETag"] == put["ETag"], copy
assert s3.get_object(Bucket=bucket, Key="copy.bin")["Body"].read() == body

# versions of one key, newest first
ids = []
for i in range(3):
    ids.append(s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"v%d" % i)["VersionId"])
versions = s3.list_object_versions(Bucket=bucket, Prefix="doc.txt")["Versions"]
assert [v["VersionId"] for v in versions] == ids[::-1], versions
assert [v["IsLatest"] for v in versions] == [True, False, False], versions
old = s3.get_object(Bucket=bucket, Key="doc.txt", VersionId=ids[0])
assert old["Body"].read() == b"v0"

# presigned GET
url = s3.generate_presigned_url(
    "get_object", Params={"Bucket": bucket, "Key": "dir/big.bin"}, ExpiresIn=300
)
assert "X-Amz-Signature=" in url, url
context = ssl.create_default_context(cafile=ca) if https else None
with urllib.request.urlopen(url, context=context, timeout=60) as resp:
    assert resp.status == 200
    assert resp.read() == big

# delete_objects (botocore sends only a CRC32 checksum, no Content-MD5)
out = s3.delete_objects(
    Bucket=bucket,
    Delete={"Objects": [{"Key": k} for k in ("put.bin", "copy.bin", "dir/big.bin", "nope")]},
)
assert sorted(d["Key"] for d in out.get("Deleted", [])) == [
    "copy.bin", "dir/big.bin", "nope", "put.bin"
], out
assert not out.get("Errors"), out
left = s3.list_objects_v2(Bucket=bucket)
assert [o["Key"] for o in left.get("Contents", [])] == ["doc.txt"], left

print(json.dumps(report))
"""


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def _newest_on_index() -> str | None:
    """The newest boto3 that `pip index versions boto3` reports (None when it cannot tell)."""
    try:
        proc = subprocess.run(
            [str(VENV_PYTHON), "-m", "pip", "index", "versions", "boto3"],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"^boto3 \(([^)]+)\)", proc.stdout, re.MULTILINE)
    return match.group(1) if proc.returncode == 0 and match else None


def test_boto3_latest_scenario(
    loxo: Any,
    make_bucket: Callable[..., str],
    client_env: Callable[..., dict[str, str]],
    run: Callable[..., Any],
    fail_or_skip: Callable[[str], None],
    tmp_path: Path,
) -> None:
    if not os.access(VENV_PYTHON, os.X_OK):
        fail_or_skip(f"{VENV_PYTHON} is missing; `./dev test` creates it (the newest boto3)")
    script = tmp_path / "scenario.py"
    script.write_text(SCENARIO)
    bucket = make_bucket(loxo, "boto3new")
    env = client_env(
        LOXO_TEST_ENDPOINT=loxo.endpoint,
        LOXO_TEST_BUCKET=bucket,
        LOXO_TEST_ACCESS_KEY=loxo.access_key,
        LOXO_TEST_SECRET_KEY=loxo.secret_key,
        LOXO_TEST_CA=str(loxo.ca_bundle) if loxo.ca_bundle is not None else "",
        LOXO_TEST_WORKDIR=str(tmp_path),
    )
    env.pop("PYTHONPATH", None)  # only the boto3 venv's packages
    proc = run([str(VENV_PYTHON), str(script)], env=env, server=loxo)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=1))

    version = report["boto3"]
    assert _version(version) >= MIN_VERSION, report
    newest = _newest_on_index()
    if newest is not None:
        assert version == newest, (
            f"boto3 {version} in .venv-boto3, the index has {newest}: `./dev test` upgrades it"
        )
