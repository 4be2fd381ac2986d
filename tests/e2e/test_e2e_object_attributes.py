"""GetObjectAttributes with boto3 (and the aws CLI): ETag, checksum, parts,
storage class and size without the body."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import error_code

MiB = 1024 * 1024
ALL = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_attributes_of_a_single_part_object(s3: Any, raw_s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("attr")
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"hello", ChecksumAlgorithm="CRC32")
    got = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=ALL)
    assert got["ETag"] == put["ETag"].strip('"')
    assert got["ObjectSize"] == 5
    assert got["StorageClass"] == "STANDARD"
    assert got["Checksum"] == {"ChecksumCRC32": put["ChecksumCRC32"], "ChecksumType": "FULL_OBJECT"}
    assert "ObjectParts" not in got  # not a multipart object
    assert got["VersionId"] == put["VersionId"]
    assert got["LastModified"] == s3.head_object(Bucket=bucket, Key="k")["LastModified"]
    only = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ObjectSize"])
    assert only["ObjectSize"] == 5 and "ETag" not in only and "Checksum" not in only

    # versionId reads an old version.
    s3.put_object(Bucket=bucket, Key="k", Body=b"longer body")
    old = s3.get_object_attributes(
        Bucket=bucket, Key="k", VersionId=put["VersionId"], ObjectAttributes=["ObjectSize", "ETag"]
    )
    assert old["ObjectSize"] == 5 and old["ETag"] == put["ETag"].strip('"')

    with pytest.raises(ClientError) as exc:
        s3.get_object_attributes(Bucket=bucket, Key="missing", ObjectAttributes=["ETag"])
    assert code_of(exc) == ("NoSuchKey", 404)
    status, _, data = raw_s3.request(
        "GET", bucket, "k", query="attributes", headers={"x-amz-object-attributes": "Colour"}
    )
    assert (status, error_code(data)) == (400, "InvalidArgument")
    status, _, data = raw_s3.request("GET", bucket, "k", query="attributes")
    assert (status, error_code(data)) == (400, "InvalidRequest")


def test_attributes_list_the_parts_of_a_multipart_object(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("attrmp")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA256")
    sizes = [5 * MiB, 5 * MiB, 123]
    parts = []
    for number, size in enumerate(sizes, start=1):
        resp = s3.upload_part(
            Bucket=bucket,
            Key="mp",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=bytes([number]) * size,
            ChecksumAlgorithm="SHA256",
        )
        parts.append(
            {"PartNumber": number, "ETag": resp["ETag"], "ChecksumSHA256": resp["ChecksumSHA256"]}
        )
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    got = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=ALL)
    assert got["ETag"] == done["ETag"].strip('"')
    assert got["ObjectSize"] == sum(sizes)
    assert got["Checksum"]["ChecksumSHA256"] == done["ChecksumSHA256"]
    assert got["Checksum"]["ChecksumType"] == "COMPOSITE"
    object_parts = got["ObjectParts"]
    assert object_parts["TotalPartsCount"] == 3
    assert object_parts["IsTruncated"] is False
    assert [(p["PartNumber"], p["Size"]) for p in object_parts["Parts"]] == [
        (1, sizes[0]),
        (2, sizes[1]),
        (3, sizes[2]),
    ]
    page = s3.get_object_attributes(
        Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], MaxParts=1, PartNumberMarker=1
    )["ObjectParts"]
    assert [p["PartNumber"] for p in page["Parts"]] == [2]
    assert page["IsTruncated"] is True
    assert page["NextPartNumberMarker"] == 2 and page["MaxParts"] == 1


def test_aws_cli_get_object_attributes(
    server: Any, aws_cli: Any, require_tool: Any, s3: Any, new_bucket: Any
) -> None:
    require_tool("aws")
    bucket = new_bucket("attrcli")
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"cli")
    out = aws_cli(
        server,
        "s3api",
        "get-object-attributes",
        "--bucket",
        bucket,
        "--key",
        "k",
        "--object-attributes",
        "ETag",
        "ObjectSize",
    ).stdout
    got = json.loads(out)
    assert got["ETag"] == put["ETag"].strip('"') and got["ObjectSize"] == 3
