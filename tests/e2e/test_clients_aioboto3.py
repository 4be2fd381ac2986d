"""aioboto3 (aiobotocore + aiohttp) against loxo over HTTP and HTTPS: concurrent
async puts, gets (whole and ranged), paginated listing, a multipart upload by
hand and one by the managed `upload_fileobj`, batch delete.

aiobotocore shares botocore's defaults: flexible checksums on (a CRC32 header
over HTTP, aws-chunked bodies with a trailer over HTTPS), but its own HTTP stack.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import uuid
from collections.abc import Callable
from typing import Any

MiB = 1024 * 1024


def blob(n: int, tag: str) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha512(f"{tag}/{i}".encode()).digest()
        i += 1
    return bytes(out[:n])


async def scenario(server: Any, aioboto3: Any) -> None:
    from botocore.config import Config

    session = aioboto3.Session()
    verify = str(server.ca_bundle) if server.ca_bundle is not None else None
    async with session.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        verify=verify,
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=16),
    ) as s3:
        bucket = f"aio-{uuid.uuid4().hex[:12]}"
        await s3.create_bucket(Bucket=bucket)
        await s3.head_bucket(Bucket=bucket)

        # 24 concurrent puts, then concurrent gets
        bodies = {f"many/{i:03d}.bin": blob(1000 + 997 * i, f"many{i}") for i in range(24)}
        puts = await asyncio.gather(
            *(s3.put_object(Bucket=bucket, Key=k, Body=v) for k, v in bodies.items())
        )
        for (key, body), put in zip(bodies.items(), puts, strict=True):
            assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"', key

        async def get(key: str, **kw: Any) -> bytes:
            resp = await s3.get_object(Bucket=bucket, Key=key, **kw)
            async with resp["Body"] as stream:
                return bytes(await stream.read())

        got = await asyncio.gather(*(get(k) for k in bodies))
        assert dict(zip(bodies, got, strict=True)) == bodies
        assert await get("many/010.bin", Range="bytes=100-199") == bodies["many/010.bin"][100:200]

        # paginated listing, 5 keys a page, and a delimiter listing
        keys: list[str] = []
        async for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="many/", PaginationConfig={"PageSize": 5}
        ):
            assert page["KeyCount"] <= 5
            keys += [item["Key"] for item in page.get("Contents", [])]
        assert keys == sorted(bodies)
        top = await s3.list_objects_v2(Bucket=bucket, Delimiter="/")
        assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["many/"]

        # multipart by hand: parts uploaded concurrently, completed out of order
        parts_data = [blob(5 * MiB, "p1"), blob(5 * MiB, "p2"), blob(1234, "p3")]
        mpu = await s3.create_multipart_upload(Bucket=bucket, Key="mp/hand.bin")
        uploaded = await asyncio.gather(
            *(
                s3.upload_part(
                    Bucket=bucket,
                    Key="mp/hand.bin",
                    UploadId=mpu["UploadId"],
                    PartNumber=n,
                    Body=data,
                )
                for n, data in enumerate(parts_data, start=1)
            )
        )
        parts = [{"PartNumber": n, "ETag": r["ETag"]} for n, r in enumerate(uploaded, start=1)]
        listed = await s3.list_parts(Bucket=bucket, Key="mp/hand.bin", UploadId=mpu["UploadId"])
        assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3]
        done = await s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp/hand.bin",
            UploadId=mpu["UploadId"],
            MultipartUpload={"Parts": parts},
        )
        md5s = b"".join(hashlib.md5(d).digest() for d in parts_data)
        assert done["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-3"'
        assert await get("mp/hand.bin") == b"".join(parts_data)

        # an aborted upload leaves nothing behind
        aborted = await s3.create_multipart_upload(Bucket=bucket, Key="mp/aborted.bin")
        await s3.upload_part(
            Bucket=bucket, Key="mp/aborted.bin", UploadId=aborted["UploadId"],
            PartNumber=1, Body=b"x" * 100,
        )  # fmt: skip
        await s3.abort_multipart_upload(
            Bucket=bucket, Key="mp/aborted.bin", UploadId=aborted["UploadId"]
        )

        # the managed transfer (aioboto3's upload_fileobj / download_fileobj)
        from boto3.s3.transfer import TransferConfig

        big = blob(13 * MiB, "managed")
        cfg = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=5 * MiB)
        await s3.upload_fileobj(io.BytesIO(big), bucket, "mp/managed.bin", Config=cfg)
        head = await s3.head_object(Bucket=bucket, Key="mp/managed.bin")
        assert head["ContentLength"] == len(big)
        assert re.fullmatch(r'"[0-9a-f]{32}-[0-9]+"', head["ETag"]), head  # multipart
        sink = io.BytesIO()
        await s3.download_fileobj(bucket, "mp/managed.bin", sink, Config=cfg)
        assert sink.getvalue() == big

        # batch delete, then the bucket
        listing = await s3.list_objects_v2(Bucket=bucket, Prefix="mp/")
        assert [o["Key"] for o in listing["Contents"]] == ["mp/hand.bin", "mp/managed.bin"]
        everything = [{"Key": k} for k in [*bodies, "mp/hand.bin", "mp/managed.bin"]]
        deleted = await s3.delete_objects(Bucket=bucket, Delete={"Objects": everything})
        assert len(deleted["Deleted"]) == len(everything) and not deleted.get("Errors")
        assert (await s3.list_objects_v2(Bucket=bucket)).get("KeyCount") == 0
        await s3.delete_bucket(Bucket=bucket)


def test_aioboto3_round_trip(loxo: Any, require_module: Callable[[str], Any]) -> None:
    aioboto3 = require_module("aioboto3")
    asyncio.run(scenario(loxo, aioboto3))
