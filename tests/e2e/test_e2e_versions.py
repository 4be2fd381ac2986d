"""ListObjectVersions end to end: versions are the commits that changed a key."""

from __future__ import annotations

import json
from typing import Any


def _write_history(s3: Any, bucket: str) -> dict[str, str]:
    """k: v1, v2, deleted, v3; other: one version. Returns label -> commit."""
    commits = {}
    commits["v1"] = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    commits["other"] = s3.put_object(Bucket=bucket, Key="other", Body=b"x")["VersionId"]
    commits["v2"] = s3.put_object(Bucket=bucket, Key="k", Body=b"two!")["VersionId"]
    commits["del"] = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    commits["v3"] = s3.put_object(Bucket=bucket, Key="k", Body=b"three")["VersionId"]
    return commits


def test_versions_are_the_commits_that_changed_a_key(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("ver")
    c = _write_history(s3, bucket)
    out = s3.list_object_versions(Bucket=bucket, Prefix="k")
    versions = [(v["Key"], v["VersionId"], v["IsLatest"], v["Size"]) for v in out["Versions"]]
    assert versions == [("k", c["v3"], True, 5), ("k", c["v2"], False, 4), ("k", c["v1"], False, 3)]
    markers = [(m["Key"], m["VersionId"], m["IsLatest"]) for m in out["DeleteMarkers"]]
    assert markers == [("k", c["del"], False)]
    head = s3.head_object(Bucket=bucket, Key="k")
    # listings carry milliseconds, the Last-Modified header whole seconds
    assert out["Versions"][0]["LastModified"].replace(microsecond=0) == head["LastModified"]
    assert out["Versions"][0]["ETag"] == head["ETag"]
    assert head["VersionId"] == c["v3"]
    # every version reads back through versionId
    for label, body in (("v1", b"one"), ("v2", b"two!"), ("v3", b"three")):
        got = s3.get_object(Bucket=bucket, Key="k", VersionId=c[label])
        assert got["Body"].read() == body


def test_deleted_key_shows_a_latest_delete_marker(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("ver")
    first = s3.put_object(Bucket=bucket, Key="gone", Body=b"1")["VersionId"]
    deleted = s3.delete_object(Bucket=bucket, Key="gone")["VersionId"]
    out = s3.list_object_versions(Bucket=bucket)
    assert [(m["VersionId"], m["IsLatest"]) for m in out["DeleteMarkers"]] == [(deleted, True)]
    assert [(v["VersionId"], v["IsLatest"]) for v in out["Versions"]] == [(first, False)]


def test_pagination_and_delimiter(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("ver")
    expected = []
    for key in ("a/1", "a/2", "b", "c/d/e"):
        for n in range(3):
            vid = s3.put_object(Bucket=bucket, Key=key, Body=f"{key}{n}".encode())["VersionId"]
            expected.append((key, vid))
    # newest first within a key
    expected = [
        item
        for key in ("a/1", "a/2", "b", "c/d/e")
        for item in reversed([e for e in expected if e[0] == key])
    ]
    got = []
    pages = 0
    for page in s3.get_paginator("list_object_versions").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 2}
    ):
        pages += 1
        got += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
    assert got == expected
    assert pages == 6
    grouped = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["a/", "c/"]
    assert [v["Key"] for v in grouped["Versions"]] == ["b", "b", "b"]


def test_branches_inherit_history_and_snapshots_freeze_it(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("ver")
    c = _write_history(s3, bucket)
    s3.create_bucket(Bucket=f"{bucket}.dev")
    dev_commit = s3.put_object(Bucket=f"{bucket}.dev", Key="k", Body=b"dev")["VersionId"]
    dev = s3.list_object_versions(Bucket=f"{bucket}.dev", Prefix="k")
    assert [v["VersionId"] for v in dev["Versions"]] == [dev_commit, c["v3"], c["v2"], c["v1"]]
    main = s3.list_object_versions(Bucket=bucket, Prefix="k")
    assert [v["VersionId"] for v in main["Versions"]] == [c["v3"], c["v2"], c["v1"]]
    snap = s3.list_object_versions(Bucket=f"{bucket}.{c['v2']}", Prefix="k")
    assert [(v["VersionId"], v["IsLatest"]) for v in snap["Versions"]] == [
        (c["v2"], True),
        (c["v1"], False),
    ]
    assert "DeleteMarkers" not in snap


def test_bad_markers_are_s3_errors(raw_s3: Any, new_bucket: Any) -> None:
    from xml.etree import ElementTree

    bucket = new_bucket("ver")
    for query in ("versions&version-id-marker=abc", "versions&key-marker=k&version-id-marker=xyz"):
        status, _, body = raw_s3.request("GET", bucket, query=query)
        code = ElementTree.fromstring(body).findtext("Code")
        assert (status, code) == (400, "InvalidArgument"), query


def test_aws_cli_list_object_versions(server: Any, s3: Any, new_bucket: Any, aws_cli: Any) -> None:
    bucket = new_bucket("ver")
    c = _write_history(s3, bucket)
    result = aws_cli(server, "s3api", "list-object-versions", "--bucket", bucket)
    doc = json.loads(result.stdout)
    assert [v["VersionId"] for v in doc["Versions"] if v["Key"] == "k"] == [
        c["v3"],
        c["v2"],
        c["v1"],
    ]
    assert [m["VersionId"] for m in doc["DeleteMarkers"]] == [c["del"]]
