"""ListObjectsV2 and ListObjects (v1): prefixes, delimiters, pagination."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

N_KEYS = 2500
DIRS = 7


def key_for(i: int) -> str:
    return f"dir{i % DIRS}/obj-{i:05d}.txt"


@pytest.fixture(scope="module")
def big_bucket(server: Any, s3: Any) -> tuple[str, list[str]]:
    """A repo holding N_KEYS small objects, written by 8 concurrent clients."""
    bucket = f"list-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=bucket)
    keys = [key_for(i) for i in range(N_KEYS)]

    def writer(start: int) -> None:
        client = server.client()
        for i in range(start, N_KEYS, 8):
            client.put_object(Bucket=bucket, Key=keys[i], Body=str(i).encode())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(writer, range(8)))
    return bucket, sorted(keys)


def list_v2_all(s3: Any, **kwargs: Any) -> tuple[list[str], list[str], int]:
    """(keys, common prefixes, pages) following continuation tokens by hand."""
    keys: list[str] = []
    prefixes: list[str] = []
    pages = 0
    token = None
    while True:
        args = dict(kwargs)
        if token:
            args["ContinuationToken"] = token
        page = s3.list_objects_v2(**args)
        pages += 1
        contents = [o["Key"] for o in page.get("Contents", [])]
        common = [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert page["KeyCount"] == len(contents) + len(common)
        assert page["KeyCount"] <= args.get("MaxKeys", 1000)
        keys += contents
        prefixes += common
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            return keys, prefixes, pages
        token = page["NextContinuationToken"]
        assert pages < 10_000, "pagination does not end"


def test_v2_pagination_over_all_keys(s3: Any, big_bucket: tuple[str, list[str]]) -> None:
    bucket, expected = big_bucket
    keys, prefixes, pages = list_v2_all(s3, Bucket=bucket)
    assert prefixes == []
    assert pages == 3
    assert keys == expected

    keys, _, pages = list_v2_all(s3, Bucket=bucket, MaxKeys=333)
    assert pages == -(-N_KEYS // 333)
    assert keys == expected

    paginated = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 700}
        )
        for o in page.get("Contents", [])
    ]
    assert paginated == expected


def test_v2_max_keys_above_1000_is_capped(s3: Any, big_bucket: tuple[str, list[str]]) -> None:
    bucket, expected = big_bucket
    page = s3.list_objects_v2(Bucket=bucket, MaxKeys=5000)
    assert page["KeyCount"] == 1000
    assert page["IsTruncated"] is True
    assert [o["Key"] for o in page["Contents"]] == expected[:1000]


def test_v2_prefix_delimiter_start_after(s3: Any, big_bucket: tuple[str, list[str]]) -> None:
    bucket, expected = big_bucket
    keys, prefixes, _ = list_v2_all(s3, Bucket=bucket, Prefix="dir3/")
    assert keys == [k for k in expected if k.startswith("dir3/")]
    assert prefixes == []

    keys, prefixes, _ = list_v2_all(s3, Bucket=bucket, Delimiter="/")
    assert keys == []
    assert prefixes == [f"dir{d}/" for d in range(DIRS)]

    keys, prefixes, pages = list_v2_all(s3, Bucket=bucket, Delimiter="/", MaxKeys=2)
    assert prefixes == [f"dir{d}/" for d in range(DIRS)]
    assert pages == 4

    keys, prefixes, _ = list_v2_all(s3, Bucket=bucket, Prefix="dir5/obj-0", Delimiter="-")
    assert prefixes == []
    assert keys == [k for k in expected if k.startswith("dir5/obj-0")]

    start = expected[1234]
    keys, _, _ = list_v2_all(s3, Bucket=bucket, StartAfter=start)
    assert keys == expected[1235:]
    keys, _, _ = list_v2_all(s3, Bucket=bucket, StartAfter="dir2/obj-zzz", Prefix="dir2/")
    assert keys == []
    keys, _, _ = list_v2_all(s3, Bucket=bucket, StartAfter="a", Prefix="dir6/", MaxKeys=100)
    assert keys == [k for k in expected if k.startswith("dir6/")]


def test_v2_contents_fields(s3: Any, big_bucket: tuple[str, list[str]]) -> None:
    bucket, expected = big_bucket
    page = s3.list_objects_v2(Bucket=bucket, MaxKeys=3, FetchOwner=True)
    first = page["Contents"][0]
    assert first["Key"] == expected[0]
    assert first["Size"] == len(str(int(expected[0].split("-")[1][:5])))
    assert first["ETag"].startswith('"') and len(first["ETag"]) == 34
    assert first["StorageClass"] == "STANDARD"
    assert "Owner" in first
    assert "LastModified" in first


def test_v1_marker_pagination(s3: Any, big_bucket: tuple[str, list[str]]) -> None:
    bucket, expected = big_bucket
    keys: list[str] = []
    marker = ""
    pages = 0
    while True:
        page = s3.list_objects(Bucket=bucket, Marker=marker, MaxKeys=900)
        pages += 1
        contents = [o["Key"] for o in page.get("Contents", [])]
        keys += contents
        if not page["IsTruncated"]:
            break
        marker = page.get("NextMarker") or contents[-1]
    assert pages == 3
    assert keys == expected

    page = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=3)
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["dir0/", "dir1/", "dir2/"]
    assert page["IsTruncated"] is True
    assert page["NextMarker"] == "dir2/"
    rest = s3.list_objects(Bucket=bucket, Delimiter="/", Marker=page["NextMarker"])
    assert [p["Prefix"] for p in rest["CommonPrefixes"]] == [f"dir{d}/" for d in range(3, DIRS)]
    assert rest["IsTruncated"] is False

    paginated = [
        o["Key"]
        for page in s3.get_paginator("list_objects").paginate(
            Bucket=bucket, Prefix="dir1/", PaginationConfig={"PageSize": 100}
        )
        for o in page.get("Contents", [])
    ]
    assert paginated == [k for k in expected if k.startswith("dir1/")]


def test_listing_reflects_deletes_and_empty_prefixes(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    for key in ("a/1", "a/2", "b/c/1", "b/d", "top1", "top2"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    page = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["a/", "b/"]
    assert [o["Key"] for o in page["Contents"]] == ["top1", "top2"]

    page = s3.list_objects_v2(Bucket=bucket, Prefix="b/", Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["b/c/"]
    assert [o["Key"] for o in page["Contents"]] == ["b/d"]

    keys, prefixes, _ = list_v2_all(s3, Bucket=bucket, Delimiter="/", MaxKeys=1)
    assert prefixes == ["a/", "b/"]
    assert keys == ["top1", "top2"]

    # a common prefix disappears with the last key under it
    s3.delete_object(Bucket=bucket, Key="a/1")
    s3.delete_object(Bucket=bucket, Key="a/2")
    page = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in page.get("CommonPrefixes", [])] == ["b/"]
    page = s3.list_objects_v2(Bucket=bucket, Prefix="a/")
    assert page["KeyCount"] == 0
    assert "Contents" not in page


def test_list_bad_arguments(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=bucket, ContinuationToken="!!not-a-token!!")
    assert exc.value.response["Error"]["Code"] == "InvalidArgument"
    page = s3.list_objects_v2(Bucket=bucket, MaxKeys=0)
    assert page["KeyCount"] == 0


def test_listing_without_url_encoding_keeps_keys_exact(
    raw_s3: Any, s3: Any, new_bucket: Any
) -> None:
    """Without encoding-type=url the keys travel as XML text. XML parsers turn a
    raw CR into LF, so S3 writes CR as a character reference (&#13;) and
    the key must come back byte-exact; likewise & < > quotes."""
    import xml.etree.ElementTree as ET

    bucket = new_bucket()
    keys = sorted(["cr\rkey", "lf\nkey", "tab\tkey", "amp&<lt>\"quote'", "crlf\r\nkey"])
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"v")
    for query in ("list-type=2", ""):
        status, _, body = raw_s3.request("GET", bucket, query=query)
        assert status == 200, body
        root = ET.fromstring(body)
        ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
        listed = [k.text for k in root.findall("s3:Contents/s3:Key", ns)]
        assert listed == keys, (query, body)
