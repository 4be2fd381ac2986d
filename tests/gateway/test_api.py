"""The control API (/_loxo/api/v1) end to end: a live loxo server, real HTTP,
real PostgreSQL. Driven mostly through gateway.client.Client (sync), once
through AsyncClient, and with raw signed httpx requests for the protocol:
status codes, error bodies, authentication, the OpenAPI document.

Every test works in repos of its own (the `server` fixture is shared).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlencode

import botocore.exceptions
import httpx
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from gateway.api.operations import OPERATIONS
from gateway.client import AsyncClient, Client, LoxoError

API = "/_loxo/api/v1"
REGION = "us-east-1"
ZERO_ID = "0" * 32


# --------------------------------------------------------------------------- helpers


def unique(prefix: str = "api") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def p(*parts: str) -> str:
    """An API path: each part percent-encoded as one segment."""
    return API + "".join("/" + quote(part, safe="") for part in parts)


def fails(status: int, code: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> LoxoError:
    """The LoxoError a client call raises (list calls are consumed)."""
    with pytest.raises(LoxoError) as info:
        result = fn(*args, **kwargs)
        if isinstance(result, Iterator):
            list(result)
    err = info.value
    assert (err.status, err.code) == (status, code), f"{err.status} {err.code}: {err.message}"
    assert err.message, "an error carries a message for people"
    return err


def s3_error(fn: Callable[..., Any], **kwargs: Any) -> str:
    """The S3 error code a boto3 call fails with."""
    with pytest.raises(botocore.exceptions.ClientError) as info:
        fn(**kwargs)
    return str(info.value.response["Error"]["Code"])


def put(s3: Any, bucket: str, key: str, body: bytes) -> str:
    """PutObject; the commit it made."""
    version = s3.put_object(Bucket=bucket, Key=key, Body=body)["VersionId"]
    assert isinstance(version, str) and len(version) == 32
    return version


def delete(s3: Any, bucket: str, key: str) -> str:
    version = s3.delete_object(Bucket=bucket, Key=key)["VersionId"]
    assert isinstance(version, str) and len(version) == 32
    return version


def contents(s3: Any, bucket: str) -> dict[str, bytes]:
    """Every object of a bucket with its body."""
    out: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def log_ids(loxo: Client, repo: str, **filters: Any) -> list[str]:
    return [c.id for c in loxo.log(repo, **filters)]


def head(loxo: Client, repo: str, branch: str = "main") -> str | None:
    value: str | None = loxo.get_branch(repo, branch).head
    return value


def raw_pages(
    loxo: Client, path: str, limit: int, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every page of a list, `limit` items each, following next_cursor by hand."""
    docs: list[dict[str, Any]] = []
    query: dict[str, Any] = {**(params or {}), "limit": limit}
    while True:
        doc = loxo.request("GET", path, query)
        assert set(doc) == {"items", "next_cursor"}
        docs.append(doc)
        assert len(doc["items"]) <= limit
        if doc["next_cursor"] is None:
            return docs
        assert len(doc["items"]) == limit, "a page with a next_cursor is full"
        assert isinstance(doc["next_cursor"], str) and doc["next_cursor"]
        query["cursor"] = doc["next_cursor"]
        assert len(docs) < 500, "pagination does not end"


def page_items(docs: list[dict[str, Any]], key: str) -> list[Any]:
    return [item[key] for doc in docs for item in doc["items"]]


def sign(
    server: Any,
    method: str,
    path: str,
    params: dict[str, Any] | None = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    secret: str | None = None,
    access: str | None = None,
    service: str = "s3",
    s3_signer: bool = True,
) -> httpx.Request:
    """A SigV4-signed request (botocore's S3 signer, or its plain one)."""
    query = urlencode(
        sorted((k, str(v)) for k, v in (params or {}).items() if v is not None), quote_via=quote
    )
    url = server.endpoint + path + (f"?{query}" if query else "")
    aws = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    creds = Credentials(access or server.access_key, secret or server.secret_key)
    signer = S3SigV4Auth if s3_signer else SigV4Auth
    signer(creds, service, REGION).add_auth(aws)
    return httpx.Request(method, url, content=body, headers=dict(aws.headers.items()))


_HTTP: list[httpx.Client] = []


def call(server: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A signed request (see `sign`), sent on one shared connection pool."""
    if not _HTTP:
        _HTTP.append(httpx.Client(timeout=60))
    return _HTTP[0].send(sign(server, method, path, **kwargs))


def json_body(doc: Any) -> dict[str, Any]:
    return {"body": json.dumps(doc).encode(), "headers": {"content-type": "application/json"}}


def api_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Check an error answer: status, JSON, {"error": {"code", "message", ...}}."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    doc = response.json()
    assert isinstance(doc, dict) and set(doc) == {"error"}, doc
    error = doc["error"]
    assert isinstance(error, dict)
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    return error


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    yield
    while _HTTP:
        _HTTP.pop().close()


@pytest.fixture(scope="module")
def loxo(server: Any) -> Iterator[Client]:
    with Client(server.endpoint, server.access_key, server.secret_key) as client:
        yield client


@pytest.fixture
def repo(loxo: Client) -> str:
    """A new, empty repo (default branch main)."""
    name = unique()
    loxo.create_repo(name)
    return name


# --------------------------------------------------------------------------- repos


def test_create_repo_with_its_default_branch(loxo: Client, s3: Any) -> None:
    name = unique()
    before = datetime.now(UTC)
    created = loxo.create_repo(name)
    assert (created.name, created.default_branch) == (name, "main")
    assert created.created is not None
    assert before - timedelta(seconds=5) <= created.created <= datetime.now(UTC)
    branches = list(loxo.list_branches(name))
    assert [(b.name, b.head) for b in branches] == [("main", None)]

    # The default branch is always main: the bare bucket NAME is that branch.
    commit = put(s3, name, "k", b"four")
    info = loxo.describe_repo(name)
    assert (info.objects, info.size, info.last_commit, info.branches) == (1, 4, commit, 1)
    assert log_ids(loxo, name) == [commit]
    assert loxo.inspect(name).id == commit
    fails(409, "default_branch", loxo.delete_branch, name, "main")


def test_create_repo_refusals(loxo: Client, repo: str) -> None:
    err = fails(409, "repo_exists", loxo.create_repo, repo)
    assert repo in err.message
    for bad in ("Upper", "under_score", "-lead", "trail-", "dot.ted", "a" * 64, ""):
        fails(400, "invalid_name", loxo.create_repo, bad)
    # A refused name leaves nothing behind.
    fails(404, "repo_not_found", loxo.describe_repo, "Upper")


def test_list_repos_paginates(loxo: Client) -> None:
    stem = unique("api-list")
    names = [f"{stem}-{i}" for i in range(7)]
    for name in reversed(names):  # created out of order, listed by name
        loxo.create_repo(name)
    everything = [r.name for r in loxo.list_repos()]
    assert everything == sorted(everything)
    assert len(everything) == len(set(everything))
    assert [n for n in everything if n.startswith(stem)] == names

    docs = raw_pages(loxo, p("repos"), limit=2)
    paged = page_items(docs, "name")
    assert len(docs) >= 4  # at least 7 repos, two per page
    assert len(paged) == len(set(paged)), "a repo listed twice"
    assert [n for n in paged if n.startswith(stem)] == names
    assert set(everything) <= set(paged)
    # A cursor is the last name seen: the next page starts right after it.
    doc = loxo.request("GET", p("repos"), {"limit": 3, "cursor": names[1]})
    assert [r["name"] for r in doc["items"]] == names[2:5]
    assert doc["next_cursor"] == names[4]
    assert set(doc["items"][0]) == {"name", "default_branch", "created"}


def test_describe_repo_counts_objects_and_last_commit(loxo: Client, s3: Any, repo: str) -> None:
    put(s3, repo, "a", b"123")
    put(s3, repo, "b", b"12345")
    last_main = put(s3, repo, "a", b"1234")  # overwrite: still two objects
    info = loxo.describe_repo(repo)
    assert (info.branches, info.objects, info.size) == (1, 2, 9)
    assert info.last_commit == last_main
    assert info.last_commit_time == loxo.inspect(repo, last_main).time

    loxo.create_branch(repo, "dev")
    dev_commit = put(s3, f"{repo}.dev", "big", b"x" * 1000)
    info = loxo.describe_repo(repo)
    assert info.branches == 2
    # the newest commit of any branch; objects and size of the default branch
    assert info.last_commit == dev_commit
    assert (info.objects, info.size) == (2, 9)
    # An open commit's staging branch is not a branch of the repo.
    loxo.start_commit(repo)
    assert loxo.describe_repo(repo).branches == 2
    assert [b.name for b in loxo.list_branches(repo)] == ["dev", "main"]
    fails(404, "repo_not_found", loxo.describe_repo, unique("api-none"))


def test_delete_repo_needs_confirmation(server: Any, loxo: Client, s3: Any, repo: str) -> None:
    old = put(s3, repo, "keep", b"data")
    loxo.create_branch(repo, "dev")
    loxo.create_tag(repo, "v1")
    err = fails(400, "confirmation_required", loxo.delete_repo, repo)
    assert "confirm=true" in err.message
    api_error(
        call(server, "DELETE", p("repos", repo), params={"confirm": "yes"}),
        400,
        "confirmation_required",
    )
    assert loxo.describe_repo(repo).objects == 1
    assert contents(s3, repo) == {"keep": b"data"}
    oc = loxo.start_commit(repo)
    put(s3, oc.bucket, "staged", b"s")

    assert loxo.delete_repo(repo, confirm=True) is None
    fails(404, "repo_not_found", loxo.describe_repo, repo)
    fails(404, "repo_not_found", loxo.list_branches, repo)
    fails(404, "repo_not_found", loxo.delete_repo, repo, confirm=True)
    assert repo not in {r.name for r in loxo.list_repos()}
    # The S3 buckets are gone with it; a write right away does not bring it back.
    assert s3_error(s3.list_objects_v2, Bucket=repo) == "NoSuchBucket"
    assert s3_error(s3.list_objects_v2, Bucket=f"{repo}.dev") == "NoSuchBucket"
    assert s3_error(s3.put_object, Bucket=repo, Key="k", Body=b"x") == "NoSuchBucket"
    assert s3_error(s3.put_object, Bucket=oc.bucket, Key="k", Body=b"x") == "NoSuchBucket"
    fails(404, "repo_not_found", loxo.describe_repo, repo)
    fails(404, "repo_not_found", loxo.finish_commit, repo, oc.id, "late")
    # The name is free again, for a repo with nothing of the old one.
    loxo.create_repo(repo)
    info = loxo.describe_repo(repo)
    assert (info.branches, info.objects, info.last_commit) == (1, 0, None)
    assert list(loxo.list_tags(repo)) == []
    assert list(loxo.list_open_commits(repo)) == []
    assert contents(s3, repo) == {}
    assert s3_error(s3.list_objects_v2, Bucket=f"{repo}.dev") == "NoSuchBucket"
    # The old history is gone: its commits are not the new repo's.
    fails(404, "ref_not_found", loxo.inspect, repo, old)
    resumed = call(server, "GET", p("repos", repo, "commits"), params={"cursor": old})
    try:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=f"{repo}.{old}").get("Contents", [])]
        snapshot = f"readable: {keys}"
    except botocore.exceptions.ClientError as exc:
        snapshot = exc.response["Error"]["Code"]
    # (a log resumed at an old commit, the old commit's snapshot bucket)
    assert (resumed.status_code >= 400, snapshot) == (True, "NoSuchBucket"), resumed.text


# --------------------------------------------------------------------------- branches


def test_create_branch_from_refs(loxo: Client, s3: Any, repo: str) -> None:
    # A branch of an empty repo has no head either.
    assert loxo.create_branch(repo, "early").head is None
    c1 = put(s3, repo, "a", b"1")
    c2 = put(s3, repo, "a", b"2")
    c3 = put(s3, repo, "b", b"x")
    loxo.create_tag(repo, "v2", c2)

    made = loxo.create_branch(repo, "dev")
    assert (made.repo, made.name, made.head) == (repo, "dev", c3)
    assert made.created is not None
    cases = {
        "back1": ("main~1", c2),
        "back2": ("main~2", c1),
        "caret": ("main^", c2),
        "prefix": (c1[:8], c1),
        "full": (c2, c2),
        "prefix-step": (c2[:10] + "~1", c1),
        "tagged": ("v2", c2),
        "tag-step": ("v2~1", c1),
        "from-branch": ("dev", c3),
    }
    for name, (source, expected) in cases.items():
        assert loxo.create_branch(repo, name, source).head == expected, source
        assert head(loxo, repo, name) == expected
    assert contents(s3, f"{repo}.back1") == {"a": b"2"}
    assert contents(s3, f"{repo}.back2") == {"a": b"1"}
    assert contents(s3, f"{repo}.tagged") == {"a": b"2"}
    # Branches are independent: a write to one leaves the others alone.
    put(s3, f"{repo}.back1", "only-back1", b"!")
    assert head(loxo, repo) == c3
    assert "only-back1" not in contents(s3, f"{repo}.dev")

    fails(404, "ref_not_found", loxo.create_branch, repo, "x1", "nope")
    fails(404, "ref_not_found", loxo.create_branch, repo, "x2", "main~3")
    fails(404, "ref_not_found", loxo.create_branch, repo, "x3", ZERO_ID)
    fails(400, "invalid_ref", loxo.create_branch, repo, "x4", "Main")
    fails(400, "invalid_ref", loxo.create_branch, repo, "x5", "main~x")
    fails(409, "branch_exists", loxo.create_branch, repo, "dev", c1)
    assert head(loxo, repo, "dev") == c3  # untouched by the refused create
    fails(409, "tag_exists", loxo.create_branch, repo, "v2")
    fails(400, "invalid_name", loxo.create_branch, repo, "Dev")
    fails(400, "invalid_name", loxo.create_branch, repo, c1)  # reads as a commit id
    fails(404, "repo_not_found", loxo.create_branch, unique("api-none"), "dev")
    names = {b.name for b in loxo.list_branches(repo)}
    assert names == {"main", "early", "dev", *cases}


def test_list_get_delete_branches(loxo: Client, s3: Any, repo: str) -> None:
    c1 = put(s3, repo, "a", b"1")
    created = [f"b{i}" for i in range(5)]
    for name in reversed(created):
        loxo.create_branch(repo, name)
    expected = [*created, "main"]
    assert [b.name for b in loxo.list_branches(repo)] == expected
    assert all(b.head == c1 and b.repo == repo for b in loxo.list_branches(repo))
    docs = raw_pages(loxo, p("repos", repo, "branches"), limit=2)
    assert [len(d["items"]) for d in docs] == [2, 2, 2]
    assert page_items(docs, "name") == expected
    docs = raw_pages(loxo, p("repos", repo, "branches"), limit=6)
    assert len(docs) == 1 and docs[0]["next_cursor"] is None

    got = loxo.get_branch(repo, "b2")
    assert (got.repo, got.name, got.head) == (repo, "b2", c1)
    fails(404, "branch_not_found", loxo.get_branch, repo, "zz")
    fails(404, "repo_not_found", loxo.get_branch, unique("api-none"), "main")

    # A branch is deleted whatever it holds.
    put(s3, f"{repo}.b2", "dev-only", b"d")
    assert loxo.delete_branch(repo, "b2") is None
    fails(404, "branch_not_found", loxo.get_branch, repo, "b2")
    fails(404, "branch_not_found", loxo.delete_branch, repo, "b2")
    assert [b.name for b in loxo.list_branches(repo)] == ["b0", "b1", "b3", "b4", "main"]
    # Its bucket is gone at once, for reads and for writes.
    assert s3_error(s3.list_objects_v2, Bucket=f"{repo}.b2") == "NoSuchBucket"
    assert s3_error(s3.put_object, Bucket=f"{repo}.b2", Key="k", Body=b"x") == "NoSuchBucket"
    fails(404, "branch_not_found", loxo.get_branch, repo, "b2")

    err = fails(409, "default_branch", loxo.delete_branch, repo, "main")
    assert "main" in err.message
    assert head(loxo, repo) == c1
    assert contents(s3, repo) == {"a": b"1"}


def test_reset_branch_and_compare_and_set(server: Any, loxo: Client, s3: Any, repo: str) -> None:
    c1 = put(s3, repo, "a", b"1")
    c2 = put(s3, repo, "b", b"2")
    c3 = put(s3, repo, "c", b"3")
    loxo.create_branch(repo, "dev")
    loxo.create_tag(repo, "first", c1)

    moved = loxo.reset_branch(repo, "dev", "main~2")
    assert (moved.name, moved.head) == ("dev", c1)
    assert contents(s3, f"{repo}.dev") == {"a": b"1"}

    err = fails(409, "head_moved", loxo.reset_branch, repo, "dev", "main", c2)
    assert c1 in err.message
    assert head(loxo, repo, "dev") == c1
    assert loxo.reset_branch(repo, "dev", "main", c1).head == c3
    # expected None means "no commit": the branch has one.
    fails(409, "head_moved", loxo.reset_branch, repo, "dev", "first", None)
    assert head(loxo, repo, "dev") == c3
    assert loxo.reset_branch(repo, "dev", "main^").head == c2
    assert loxo.reset_branch(repo, "dev", "first", c2).head == c1
    assert loxo.reset_branch(repo, "dev", c3[:9]).head == c3

    # expected None on a branch without commits succeeds.
    other = unique()
    loxo.create_repo(other)
    loxo.create_branch(other, "empty")
    first = put(s3, other, "k", b"v")
    fails(409, "head_moved", loxo.reset_branch, other, "empty", "main", first)
    assert head(loxo, other, "empty") is None
    assert loxo.reset_branch(other, "empty", "main", None).head == first

    # Writes after a reset build on the new head.
    assert loxo.reset_branch(repo, "main", "main~2").head == c1
    after = put(s3, repo, "d", b"4")
    assert loxo.inspect(repo, after).parents == (c1,)
    assert contents(s3, repo) == {"a": b"1", "d": b"4"}
    assert log_ids(loxo, repo) == [after, c1]

    api_error(
        call(
            server,
            "POST",
            p("repos", repo, "branches", "dev", "reset"),
            **json_body({"to": "main", "expected_head": "not-hex"}),
        ),
        400,
        "invalid_request",
    )
    fails(404, "branch_not_found", loxo.reset_branch, repo, "nope", "main")
    fails(404, "ref_not_found", loxo.reset_branch, repo, "dev", "nope")
    fails(400, "invalid_ref", loxo.reset_branch, repo, "dev", "main^0")
    assert head(loxo, repo, "dev") == c3


# --------------------------------------------------------------------------- tags


def test_tags(server: Any, loxo: Client, s3: Any, repo: str) -> None:
    fails(404, "ref_not_found", loxo.create_tag, repo, "early")  # main has no commit yet
    c1 = put(s3, repo, "f", b"one")
    c2 = put(s3, repo, "f", b"two")
    v1 = loxo.create_tag(repo, "v1", "main~1")
    assert (v1.repo, v1.name, v1.commit) == (repo, "v1", c1)
    assert v1.created is not None
    assert loxo.create_tag(repo, "v2").commit == c2  # default: the default branch's head
    assert loxo.create_tag(repo, "by-prefix", c1[:8]).commit == c1
    assert loxo.create_tag(repo, "of-tag", "v2~1").commit == c1
    loxo.create_branch(repo, "dev")

    # A tag does not move with its branch.
    c3 = put(s3, repo, "f", b"three")
    doc = loxo.request("GET", p("repos", repo, "tags", "v1"))
    assert doc == {"repo": repo, "name": "v1", "commit": c1, "created": doc["created"]}
    assert loxo.request("GET", p("repos", repo, "tags", "v2"))["commit"] == c2
    fails(404, "tag_not_found", loxo.request, "GET", p("repos", repo, "tags", "v9"))

    expected = ["by-prefix", "of-tag", "v1", "v2"]
    assert [t.name for t in loxo.list_tags(repo)] == expected
    assert [t.commit for t in loxo.list_tags(repo)] == [c1, c1, c1, c2]
    docs = raw_pages(loxo, p("repos", repo, "tags"), limit=1)
    assert [len(d["items"]) for d in docs] == [1, 1, 1, 1]
    assert page_items(docs, "name") == expected

    # Refusals: names are shared between branches and tags.
    fails(409, "tag_exists", loxo.create_tag, repo, "v1", c3)
    assert loxo.request("GET", p("repos", repo, "tags", "v1"))["commit"] == c1
    fails(409, "branch_exists", loxo.create_tag, repo, "main")
    fails(409, "branch_exists", loxo.create_tag, repo, "dev")
    fails(409, "tag_exists", loxo.create_branch, repo, "v1")
    fails(400, "invalid_name", loxo.create_tag, repo, "V1")
    fails(404, "ref_not_found", loxo.create_tag, repo, "v3", "nowhere")

    # A tag is a ref everywhere.
    assert loxo.inspect(repo, "v1").id == c1
    assert log_ids(loxo, repo, ref="v2") == [c2, c1]
    assert [(d.path, d.change) for d in loxo.diff(repo, "v1", "v2")] == [("f", "modified")]
    assert [v.commit for v in loxo.history(repo, "f", ref="v2")] == [c2, c1]
    assert loxo.create_branch(repo, "from-tag", "v1").head == c1
    assert contents(s3, f"{repo}.from-tag") == {"f": b"one"}
    # The tagged commit reads as a snapshot bucket, read-only.
    assert contents(s3, f"{repo}.{v1.commit}") == {"f": b"one"}
    assert s3_error(s3.put_object, Bucket=f"{repo}.{c1}", Key="g", Body=b"x") == "AccessDenied"

    assert loxo.delete_tag(repo, "v1") is None
    fails(404, "tag_not_found", loxo.request, "GET", p("repos", repo, "tags", "v1"))
    fails(404, "tag_not_found", loxo.delete_tag, repo, "v1")
    fails(404, "ref_not_found", loxo.inspect, repo, "v1")
    assert [t.name for t in loxo.list_tags(repo)] == ["by-prefix", "of-tag", "v2"]
    # Deleting a tag deletes no commit: the snapshot still reads.
    assert contents(s3, f"{repo}.{c1}") == {"f": b"one"}
    fails(404, "repo_not_found", loxo.delete_tag, unique("api-none"), "v1")
    fails(404, "repo_not_found", loxo.request, "GET", p("repos", unique("api-none"), "tags", "x"))
    # The name is free again.
    assert loxo.create_tag(repo, "v1", c3).commit == c3
    assert head(loxo, repo) == c3


# --------------------------------------------------------------------------- commits


def test_log_order_path_and_time_filters(server: Any, loxo: Client, s3: Any, repo: str) -> None:
    c1 = put(s3, repo, "docs/a.txt", b"a")
    c2 = put(s3, repo, "src/x.py", b"x")
    c3 = put(s3, repo, "docs/b.txt", b"b")
    c4 = put(s3, repo, "docs-other", b"o")
    c5 = delete(s3, repo, "docs/a.txt")
    log = list(loxo.log(repo))
    assert [c.id for c in log] == [c5, c4, c3, c2, c1]
    times = [c.time for c in log]
    assert all(a is not None and b is not None and a > b for a, b in itertools.pairwise(times))
    assert log[0].parents == (c4,) and log[-1].parents == ()
    assert log[0].message == "DeleteObject docs/a.txt"
    assert log[0].origin["op"] == "DeleteObject"

    assert log_ids(loxo, repo, path="docs/a.txt") == [c5, c1]
    assert log_ids(loxo, repo, path="docs/") == [c5, c3, c1]
    assert log_ids(loxo, repo, path="docs") == [c5, c3, c1]  # a folder, without the slash
    assert log_ids(loxo, repo, path="docs-other") == [c4]
    assert log_ids(loxo, repo, path="src/x.py") == [c2]
    assert log_ids(loxo, repo, path="nothing/here") == []
    assert log_ids(loxo, repo, ref=c3[:8]) == [c3, c2, c1]
    assert log_ids(loxo, repo, ref="main~2", path="docs") == [c3, c1]

    raw = {c["id"]: c["time"] for c in loxo.request("GET", p("repos", repo, "commits"))["items"]}
    assert all(t.endswith("Z") for t in raw.values())
    assert log_ids(loxo, repo, since=raw[c3]) == [c5, c4, c3]  # inclusive
    assert log_ids(loxo, repo, until=raw[c2]) == [c2, c1]  # inclusive
    assert log_ids(loxo, repo, since=raw[c2], until=raw[c4]) == [c4, c3, c2]
    assert log_ids(loxo, repo, since=raw[c2], until=raw[c4], path="docs") == [c3]
    # Other spellings of a time: an offset, no zone (UTC), Unix seconds.
    t3 = datetime.fromisoformat(raw[c3].replace("Z", "+00:00"))
    assert log_ids(loxo, repo, since=t3.astimezone(UTC).isoformat()) == [c5, c4, c3]
    east = t3.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    assert "+05:30" in east
    assert log_ids(loxo, repo, since=east) == [c5, c4, c3]
    assert log_ids(loxo, repo, since=t3.replace(tzinfo=None).isoformat()) == [c5, c4, c3]
    hour_ago = int((t3 - timedelta(hours=1)).timestamp())
    assert log_ids(loxo, repo, since=str(hour_ago)) == [c5, c4, c3, c2, c1]
    assert log_ids(loxo, repo, until=str(hour_ago)) == []

    for bad in ({"since": "yesterday"}, {"until": "2026-13-45"}, {"limit": "0"}):
        api_error(
            call(server, "GET", p("repos", repo, "commits"), params=bad), 400, "invalid_request"
        )
    fails(404, "ref_not_found", loxo.log, repo, ref="nope")
    fails(404, "repo_not_found", loxo.log, unique("api-none"))


def test_log_pagination_includes_merged_history_once(loxo: Client, s3: Any, repo: str) -> None:
    m1 = put(s3, repo, "m1", b"1")
    loxo.create_branch(repo, "feat")
    f1 = put(s3, f"{repo}.feat", "f1", b"f")
    m2 = put(s3, repo, "m2", b"2")
    f2 = put(s3, f"{repo}.feat", "f2", b"f")
    m3 = put(s3, repo, "m3", b"3")
    merged = loxo.merge(repo, "feat", "main")
    assert merged.outcome == "merged"
    m4 = put(s3, repo, "m4", b"4")
    f3 = put(s3, f"{repo}.feat", "f3", b"f")  # after the merge: not in main's history
    expected = [m4, merged.commit, m3, f2, m2, f1, m1]
    assert log_ids(loxo, repo) == expected
    assert f3 not in log_ids(loxo, repo)
    for limit in (1, 2, 3, 6, 7):
        docs = raw_pages(loxo, p("repos", repo, "commits"), limit=limit)
        assert page_items(docs, "id") == expected, limit
    # The last page of an exact fit announces no further page.
    assert len(raw_pages(loxo, p("repos", repo, "commits"), limit=7)) == 1
    # A path filter across pages. A commit changed a path when it differs from
    # its first parent: the merge brought f2 to main, so it is listed too.
    docs = raw_pages(loxo, p("repos", repo, "commits"), limit=1, params={"path": "f2"})
    assert page_items(docs, "id") == [merged.commit, f2]
    assert log_ids(loxo, repo, path="m3") == [m3]
    docs = raw_pages(loxo, p("repos", repo, "commits"), limit=2, params={"ref": "feat"})
    assert page_items(docs, "id") == [f3, f2, f1, m1]
    assert loxo.inspect(repo, merged.commit).parents == (m3, f2)


@pytest.mark.parametrize(
    ("what", "params"),
    [
        ("commits", {"cursor": "not-a-cursor"}),
        ("commits", {"cursor": "abcd"}),  # hex, but no commit id
        ("commits", {"cursor": "."}),
        ("history", {"path": "k", "cursor": "not-a-cursor"}),
    ],
)
def test_malformed_cursors_are_invalid_requests(
    server: Any, s3: Any, repo: str, what: str, params: dict[str, str]
) -> None:
    """errors.API_CODES: a malformed cursor is 400 invalid_request (not
    another code, a missing commit or a silently empty page)."""
    put(s3, repo, "k", b"v")
    api_error(call(server, "GET", p("repos", repo, what), params=params), 400, "invalid_request")


def test_inspect_and_ref_syntax(server: Any, loxo: Client, s3: Any, repo: str) -> None:
    c1 = put(s3, repo, "a", b"aaa")
    c2 = put(s3, repo, "b", b"bbbb")
    c3 = put(s3, repo, "a", b"AAAAA")
    c4 = delete(s3, repo, "b")

    first = loxo.inspect(repo, c1)
    assert (first.id, first.parents, first.objects, first.size) == (c1, (), 1, 3)
    assert first.changes == {"added": 1, "modified": 0, "deleted": 0}
    third = loxo.inspect(repo, c3)
    assert (third.parents, third.objects, third.size) == ((c2,), 2, 9)
    assert third.changes == {"added": 0, "modified": 1, "deleted": 0}
    assert third.message == "PutObject a"
    assert third.author
    assert third.origin == {"repo": repo, "branch": "main", "op": "PutObject", "keys": ["a"]}
    fourth = loxo.inspect(repo)  # the default branch's head
    assert (fourth.id, fourth.objects, fourth.size) == (c4, 1, 5)
    assert fourth.changes == {"added": 0, "modified": 0, "deleted": 1}
    raw = loxo.request("GET", p("repos", repo, "commits", c3))
    assert set(raw) == {
        "id",
        "parents",
        "author",
        "message",
        "time",
        "origin",
        "objects",
        "size",
        "changes",
        "bucket",
    }

    refs = {
        "main": c4,
        "main~": c3,
        "main~1": c3,
        "main~3": c1,
        "main^": c3,
        "main^^": c2,
        "main^1": c3,
        "main~1^1": c2,
        "main~0": c4,
        c2: c2,
        c2[:8]: c2,
        c2[:8] + "~1": c1,
        c4[:12] + "^^": c2,
    }
    for ref, expected in refs.items():
        assert loxo.inspect(repo, ref).id == expected, ref
    for ref in ("main~4", "main^2", "nope", "abc1234", ZERO_ID, "0" * 8):
        fails(404, "ref_not_found", loxo.inspect, repo, ref)
    err = fails(404, "ref_not_found", loxo.inspect, repo, c2[:7])
    assert "8" in err.message  # a prefix needs 8 hex digits
    for ref in ("Main", "main^0", "main~x", "main@x", "main^-1", "~1"):
        fails(400, "invalid_ref", loxo.inspect, repo, ref)
    fails(404, "repo_not_found", loxo.inspect, unique("api-none"), "main")
    # A name is a branch, then a tag, then a commit prefix (refs.py).
    loxo.create_branch(repo, c2[:8], c1)
    assert loxo.inspect(repo, c2[:8]).id == c1
    assert loxo.inspect(repo, c2[:9]).id == c2
    # A commit of another repo is not a commit of this one.
    other = unique()
    loxo.create_repo(other)
    elsewhere = put(s3, other, "a", b"aaa")
    fails(404, "ref_not_found", loxo.inspect, repo, elsewhere)
    assert loxo.inspect(other, elsewhere).id == elsewhere


# --------------------------------------------------------------------------- diff and history


def test_diff(server: Any, loxo: Client, s3: Any, repo: str) -> None:
    for key, size in (("keep", 1), ("mod", 2), ("gone", 3), ("dir/x", 4), ("dir/y", 5)):
        put(s3, repo, key, b"." * size)
    loxo.create_tag(repo, "base")
    put(s3, repo, "mod", b"m" * 20)
    delete(s3, repo, "gone")
    put(s3, repo, "new", b"n" * 6)
    put(s3, repo, "dir/z", b"z" * 7)
    put(s3, repo, "dir/x", b"x" * 40)

    changes = [
        (c.path, c.change, c.size_before, c.size_after) for c in loxo.diff(repo, "base", "main")
    ]
    assert changes == [
        ("dir/x", "modified", 4, 40),
        ("dir/z", "added", None, 7),
        ("gone", "deleted", 3, None),
        ("mod", "modified", 2, 20),
        ("new", "added", None, 6),
    ]
    backwards = [
        (c.path, c.change, c.size_before, c.size_after) for c in loxo.diff(repo, "main", "base")
    ]
    assert backwards == [
        ("dir/x", "modified", 40, 4),
        ("dir/z", "deleted", 7, None),
        ("gone", "added", None, 3),
        ("mod", "modified", 20, 2),
        ("new", "deleted", 6, None),
    ]
    assert [c.path for c in loxo.diff(repo, "base", "main", prefix="dir/")] == ["dir/x", "dir/z"]
    assert [c.path for c in loxo.diff(repo, "base", "main", prefix="g")] == ["gone"]
    assert [c.path for c in loxo.diff(repo, "base", "main", prefix="zzz")] == []
    assert list(loxo.diff(repo, "main", "main")) == []
    assert [(c.path, c.change) for c in loxo.diff(repo, "main~1", "main")] == [
        ("dir/x", "modified")
    ]
    assert [(c.path, c.change) for c in loxo.diff(repo, "main~1", "main~2")] == [
        ("dir/z", "deleted")
    ]
    base_id = loxo.request("GET", p("repos", repo, "tags", "base"))["commit"]
    assert [c.path for c in loxo.diff(repo, base_id[:8], "main~4")] == ["mod"]
    assert [c.path for c in loxo.diff(repo, base_id[:8], "main~3")] == ["gone", "mod"]

    # Pages of any size give the same changes as one page.
    everything = [c[0] for c in changes]
    diff_path = p("repos", repo, "diff")
    for limit in (1, 2, 4, 5):
        docs = raw_pages(loxo, diff_path, limit, {"from": "base", "to": "main"})
        assert page_items(docs, "path") == everything, limit
        assert docs[0]["items"][0] == {
            "path": "dir/x",
            "change": "modified",
            "size_before": 4,
            "size_after": 40,
        }
    assert len(raw_pages(loxo, diff_path, 5, {"from": "base", "to": "main"})) == 1
    docs = raw_pages(loxo, diff_path, 1, {"from": "base", "to": "main", "prefix": "dir/"})
    assert page_items(docs, "path") == ["dir/x", "dir/z"]
    doc = loxo.request("GET", diff_path, {"from": "base", "to": "main", "cursor": "gone"})
    assert [c["path"] for c in doc["items"]] == ["mod", "new"]

    api_error(call(server, "GET", diff_path, params={"from": "base"}), 400, "invalid_request")
    api_error(call(server, "GET", diff_path, params={"to": "main"}), 400, "invalid_request")
    api_error(
        call(server, "GET", diff_path, params={"from": "base", "to": "main", "limit": "x"}),
        400,
        "invalid_request",
    )
    fails(404, "ref_not_found", loxo.diff, repo, "base", "nope")
    fails(404, "ref_not_found", loxo.diff, repo, "nope", "main")
    fails(400, "invalid_ref", loxo.diff, repo, "base", "Main")


def test_history(server: Any, loxo: Client, s3: Any, repo: str) -> None:
    v1 = put(s3, repo, "k", b"one")
    other = put(s3, repo, "other", b"x")
    v2 = put(s3, repo, "k", b"two!")
    gone = delete(s3, repo, "k")
    v3 = put(s3, repo, "k", b"three")
    put(s3, repo, "other", b"y")

    versions = list(loxo.history(repo, "k"))
    assert [(v.commit, v.deleted, v.size) for v in versions] == [
        (v3, False, 5),
        (gone, True, None),
        (v2, False, 4),
        (v1, False, 3),
    ]
    assert versions[0].etag == s3.head_object(Bucket=repo, Key="k")["ETag"].strip('"')
    assert versions[1].etag is None
    assert [v.message for v in versions] == [
        "PutObject k",
        "DeleteObject k",
        "PutObject k",
        "PutObject k",
    ]
    times = [v.time for v in versions]
    assert all(a is not None and b is not None and a > b for a, b in itertools.pairwise(times))
    raw = loxo.request("GET", p("repos", repo, "history"), {"path": "k"})["items"]
    assert raw[1] == {
        "commit": gone,
        "time": raw[1]["time"],
        "message": "DeleteObject k",
        "deleted": True,
        "object": None,
    }
    assert raw[0]["object"]["size"] == 5
    assert raw[0]["object"]["etag"] == versions[0].etag

    for limit in (1, 2, 3, 4):
        docs = raw_pages(loxo, p("repos", repo, "history"), limit, {"path": "k"})
        assert page_items(docs, "commit") == [v3, gone, v2, v1], limit
    assert len(raw_pages(loxo, p("repos", repo, "history"), 4, {"path": "k"})) == 1

    assert [v.commit for v in loxo.history(repo, "other", ref=v3)] == [other]
    assert [v.commit for v in loxo.history(repo, "k", ref="main~3")] == [v2, v1]
    assert list(loxo.history(repo, "missing")) == []
    # Paths travel in the query string: spaces, '+', '&', '=' and non-ASCII.
    odd = "a b+c&d=e/ü.txt"
    written = put(s3, repo, odd, b"odd")
    assert [v.commit for v in loxo.history(repo, odd)] == [written]
    assert log_ids(loxo, repo, path=odd) == [written]
    assert log_ids(loxo, repo, path="a b+c&d=e") == [written]
    assert [c.path for c in loxo.diff(repo, "main~1", "main", prefix="a b+")] == [odd]
    api_error(call(server, "GET", p("repos", repo, "history")), 400, "invalid_request")
    fails(404, "ref_not_found", loxo.history, repo, "k", ref="nope")
    fails(404, "repo_not_found", loxo.history, unique("api-none"), "k")


# --------------------------------------------------------------------------- open commits


def test_open_commit_becomes_one_commit(loxo: Client, s3: Any, repo: str) -> None:
    base = put(s3, repo, "base.txt", b"base")
    oc = loxo.start_commit(repo)
    assert len(oc.id) == 32 and int(oc.id, 16) >= 0
    assert oc.bucket == f"{repo}.{oc.id}"
    assert (oc.repo, oc.branch, oc.base, oc.finishing) == (repo, "main", base, False)
    assert oc.idle_seconds > 0
    assert [o.id for o in loxo.list_open_commits(repo)] == [oc.id]

    written = {"x/1": b"one", "x/2": b"two", "x/3": b"three", "base.txt": b"changed"}
    for key, body in written.items():
        put(s3, oc.bucket, key, body)
    delete(s3, oc.bucket, "x/3")
    del written["x/3"]
    # The open commit reads its own writes; the branch sees none of them yet.
    assert contents(s3, oc.bucket) == written
    assert head(loxo, repo) == base
    assert contents(s3, repo) == {"base.txt": b"base"}
    assert log_ids(loxo, repo) == [base]
    assert loxo.describe_repo(repo).branches == 1

    commit = loxo.finish_commit(repo, oc.id, "one batch")
    assert isinstance(commit, str) and len(commit) == 32
    assert log_ids(loxo, repo) == [commit, base]
    assert head(loxo, repo) == commit
    assert contents(s3, repo) == written
    info = loxo.inspect(repo, commit)
    assert (info.parents, info.message) == ((base,), "one batch")
    assert info.changes == {"added": 2, "modified": 1, "deleted": 0}
    assert info.origin["op"] == "commit" and info.origin["open_commit"] == oc.id
    assert list(loxo.list_open_commits(repo)) == []
    # Every object's history names the finished commit, not a staging one.
    assert [v.commit for v in loxo.history(repo, "x/1")] == [commit]

    # The open commit is over: its bucket takes no more writes, nor reads.
    assert s3_error(s3.put_object, Bucket=oc.bucket, Key="late", Body=b"x") == "NoSuchBucket"
    assert s3_error(s3.list_objects_v2, Bucket=oc.bucket) == "NoSuchBucket"
    assert head(loxo, repo) == commit
    fails(404, "open_commit_not_found", loxo.finish_commit, repo, oc.id, "again")
    fails(404, "open_commit_not_found", loxo.abort_commit, repo, oc.id)
    assert log_ids(loxo, repo) == [commit, base]


def test_open_commit_keeps_what_the_branch_got_meanwhile(loxo: Client, s3: Any, repo: str) -> None:
    loxo.create_branch(repo, "dev")
    oc = loxo.start_commit(repo, "dev")
    assert (oc.branch, oc.base) == ("dev", None)  # an empty branch
    put(s3, oc.bucket, "from-open", b"o")
    meanwhile = put(s3, f"{repo}.dev", "meanwhile", b"m")
    commit = loxo.finish_commit(repo, oc.id[:8], "by prefix")
    assert loxo.inspect(repo, commit).parents == (meanwhile,)
    assert contents(s3, f"{repo}.dev") == {"from-open": b"o", "meanwhile": b"m"}
    assert contents(s3, repo) == {}
    assert head(loxo, repo) is None


def test_open_commit_abort_and_empty_finish(loxo: Client, s3: Any, repo: str) -> None:
    base = put(s3, repo, "a", b"1")
    aborted = loxo.start_commit(repo)
    put(s3, aborted.bucket, "never", b"x")
    assert loxo.abort_commit(repo, aborted.id) is None
    assert head(loxo, repo) == base
    assert contents(s3, repo) == {"a": b"1"}
    assert list(loxo.list_open_commits(repo)) == []
    assert s3_error(s3.put_object, Bucket=aborted.bucket, Key="k", Body=b"x") == "NoSuchBucket"
    assert s3_error(s3.list_objects_v2, Bucket=aborted.bucket) == "NoSuchBucket"
    assert head(loxo, repo) == base
    fails(404, "open_commit_not_found", loxo.finish_commit, repo, aborted.id, "late")
    fails(404, "open_commit_not_found", loxo.abort_commit, repo, aborted.id)

    empty = loxo.start_commit(repo)
    assert loxo.finish_commit(repo, empty.id, "nothing") is None
    assert log_ids(loxo, repo) == [base]
    assert list(loxo.list_open_commits(repo)) == []
    fails(404, "open_commit_not_found", loxo.finish_commit, repo, empty.id, "nothing")


def test_open_commit_staging_branch_is_not_a_branch(
    server: Any, loxo: Client, s3: Any, repo: str
) -> None:
    """An open commit's staging branch (`_open-<id>`) is hidden from branch
    listings and describe; the branch operations must not reach it either,
    or deleting it makes the finish commit the deletion of everything."""
    base = put(s3, repo, "a", b"1")
    oc = loxo.start_commit(repo)
    put(s3, oc.bucket, "b", b"2")
    assert loxo.describe_repo(repo).last_commit == base  # staging writes are not commits yet
    staging = p("repos", repo, "branches", f"_open-{oc.id}")
    got = call(server, "GET", staging).status_code
    reset = call(server, "POST", staging + "/reset", **json_body({"to": base})).status_code
    deleted = call(server, "DELETE", staging).status_code
    commit = loxo.finish_commit(repo, oc.id, "finish")
    assert (got, reset, deleted, contents(s3, repo)) == (404, 404, 404, {"a": b"1", "b": b"2"})
    assert loxo.inspect(repo, commit).changes == {"added": 1, "modified": 0, "deleted": 0}


def test_idle_open_commits_expire(make_server: Callable[..., Any]) -> None:
    """idle_seconds, and the server's --open-commit-idle-minutes default:
    an open commit nothing was written to for that long is aborted."""
    server = make_server(extra_args=["--open-commit-idle-minutes", "0.05"])
    s3 = server.client()
    with Client(server.endpoint, server.access_key, server.secret_key) as loxo:
        loxo.create_repo("idle")
        base = put(s3, "idle", "a", b"1")
        short = loxo.start_commit("idle", idle_seconds=1)
        default = loxo.start_commit("idle")
        assert (short.idle_seconds, default.idle_seconds) == (1, 3)
        kept = loxo.start_commit("idle", idle_seconds=600)
        put(s3, short.bucket, "k", b"v")
        put(s3, kept.bucket, "k", b"kept")
        deadline = time.monotonic() + 20
        while len(list(loxo.list_open_commits("idle"))) > 1 and time.monotonic() < deadline:
            time.sleep(0.25)
        assert [o.id for o in loxo.list_open_commits("idle")] == [kept.id]
        assert s3_error(s3.put_object, Bucket=short.bucket, Key="x", Body=b"x") == "NoSuchBucket"
        fails(404, "open_commit_not_found", loxo.finish_commit, "idle", short.id, "late")
        assert head(loxo, "idle") == base
        commit = loxo.finish_commit("idle", kept.id, "kept")
        assert contents(s3, "idle") == {"a": b"1", "k": b"kept"}
        assert log_ids(loxo, "idle") == [commit, base]


def test_open_commit_refusals_and_listing(server: Any, loxo: Client, s3: Any, repo: str) -> None:
    put(s3, repo, "a", b"1")
    fails(404, "open_commit_not_found", loxo.finish_commit, repo, ZERO_ID, "m")
    fails(404, "open_commit_not_found", loxo.abort_commit, repo, ZERO_ID)
    fails(404, "branch_not_found", loxo.start_commit, repo, "nope")
    fails(404, "repo_not_found", loxo.start_commit, unique("api-none"))
    fails(404, "repo_not_found", loxo.list_open_commits, unique("api-none"))
    for idle in (0, -5):
        fails(400, "invalid_request", loxo.start_commit, repo, idle_seconds=idle)
    api_error(
        call(server, "POST", p("repos", repo, "open-commits"), **json_body({"idle_seconds": "x"})),
        400,
        "invalid_request",
    )
    assert list(loxo.list_open_commits(repo)) == []

    opened = [loxo.start_commit(repo, idle_seconds=90 + i) for i in range(4)]
    assert sorted(o.idle_seconds for o in opened) == [90, 91, 92, 93]
    ids = sorted(o.id for o in opened)
    assert [o.id for o in loxo.list_open_commits(repo)] == ids
    docs = raw_pages(loxo, p("repos", repo, "open-commits"), limit=3)
    assert page_items(docs, "id") == ids
    assert [len(d["items"]) for d in docs] == [3, 1]
    # A prefix shorter than 8 hex digits names nothing.
    fails(404, "open_commit_not_found", loxo.abort_commit, repo, ids[0][:7])
    assert loxo.abort_commit(repo, ids[0][:8]) is None
    assert [o.id for o in loxo.list_open_commits(repo)] == ids[1:]
    for oc_id in ids[1:]:
        loxo.abort_commit(repo, oc_id)
    assert list(loxo.list_open_commits(repo)) == []


# --------------------------------------------------------------------------- merge and revert


def test_merge_fast_forward_and_up_to_date(loxo: Client, s3: Any, repo: str) -> None:
    c1 = put(s3, repo, "a", b"1")
    loxo.create_branch(repo, "dev")
    d1 = put(s3, f"{repo}.dev", "b", b"2")
    d2 = put(s3, f"{repo}.dev", "c", b"3")

    assert loxo.merge(repo, "dev~1", "main").outcome == "fast-forward"
    assert head(loxo, repo) == d1
    result = loxo.merge(repo, "dev", "main")
    assert (result.outcome, result.commit, result.conflicts) == ("fast-forward", d2, ())
    assert head(loxo, repo) == head(loxo, repo, "dev") == d2
    assert log_ids(loxo, repo) == [d2, d1, c1]  # no merge commit
    assert contents(s3, repo) == {"a": b"1", "b": b"2", "c": b"3"}

    again = loxo.merge(repo, "dev", "main")
    assert (again.outcome, again.commit) == ("up-to-date", d2)
    assert loxo.merge(repo, c1, "main").outcome == "up-to-date"  # an ancestor
    assert loxo.merge(repo, "main", "dev").outcome == "up-to-date"
    assert log_ids(loxo, repo) == [d2, d1, c1]

    # Into a branch without commits: a fast-forward too.
    other = unique()
    loxo.create_repo(other)
    loxo.create_branch(other, "work")
    w = put(s3, f"{other}.work", "w", b"w")
    assert (loxo.merge(other, "work", "main").outcome, head(loxo, other)) == ("fast-forward", w)


def test_merge_commit_with_two_parents(loxo: Client, s3: Any, repo: str) -> None:
    put(s3, repo, "shared", b"s")
    loxo.create_branch(repo, "dev")
    dx = put(s3, f"{repo}.dev", "x", b"from dev")
    my = put(s3, repo, "y", b"from main")
    result = loxo.merge(repo, "dev", "main", message="merge dev")
    assert result.outcome == "merged" and result.conflicts == ()
    assert result.commit is not None and result.commit not in (dx, my)
    assert head(loxo, repo) == result.commit
    assert head(loxo, repo, "dev") == dx  # the source does not move
    merged = loxo.inspect(repo, "main")
    assert (merged.parents, merged.message) == ((my, dx), "merge dev")
    assert merged.origin["op"] == "merge" and merged.origin["source_commit"] == dx
    assert merged.changes == {"added": 1, "modified": 0, "deleted": 0}  # vs the first parent
    assert contents(s3, repo) == {"shared": b"s", "x": b"from dev", "y": b"from main"}
    assert contents(s3, f"{repo}.dev") == {"shared": b"s", "x": b"from dev"}

    assert loxo.inspect(repo, "main^2").id == dx
    assert loxo.inspect(repo, "main^1").id == my
    assert loxo.inspect(repo, "main^").id == my
    assert loxo.inspect(repo, "main^2~1").id == loxo.inspect(repo, "main~2").id
    fails(404, "ref_not_found", loxo.inspect, repo, "main^3")
    ids = log_ids(loxo, repo)
    assert ids[0] == result.commit and ids.count(dx) == 1 and len(ids) == len(set(ids)) == 4
    # Reverting a merge undoes what it brought, relative to its first parent.
    undo = loxo.revert(repo, result.commit)
    assert loxo.inspect(repo, undo).parents == (result.commit,)
    assert contents(s3, repo) == {"shared": b"s", "y": b"from main"}
    loxo.reset_branch(repo, "main", result.commit, undo)
    # A merge with the default message names the source.
    put(s3, f"{repo}.dev", "x2", b"2")
    put(s3, repo, "y2", b"2")
    second = loxo.merge(repo, "dev", "main")
    assert second.outcome == "merged"
    assert "dev" in loxo.inspect(repo, second.commit).message


def test_merge_conflicts_and_strategies(server: Any, loxo: Client, s3: Any, repo: str) -> None:
    for key in ("a", "b", "c", "d", "same"):
        put(s3, repo, key, b"base")
    loxo.create_branch(repo, "dev")
    dev = f"{repo}.dev"
    put(s3, dev, "a", b"dev")
    delete(s3, dev, "b")
    put(s3, dev, "c", b"dev")
    put(s3, dev, "d", b"dev")
    put(s3, dev, "same", b"both")
    put(s3, dev, "only-dev", b"new")
    put(s3, repo, "a", b"main")
    put(s3, repo, "b", b"main")
    put(s3, repo, "c", b"main")
    delete(s3, repo, "d")
    put(s3, repo, "same", b"both")  # the same change on both sides: no conflict
    target = head(loxo, repo)
    before = contents(s3, repo)

    err = fails(409, "merge_conflict", loxo.merge, repo, "dev", "main")
    conflicts = [
        {"path": "a", "kind": "both-changed"},
        {"path": "b", "kind": "deleted-in-source"},
        {"path": "c", "kind": "both-changed"},
        {"path": "d", "kind": "deleted-in-target"},
    ]
    assert sorted(err.details["conflicts"], key=lambda c: c["path"]) == conflicts
    assert head(loxo, repo) == target
    assert contents(s3, repo) == before
    raw = api_error(
        call(
            server,
            "POST",
            p("repos", repo, "merge"),
            **json_body({"source": "dev", "into": "main"}),
        ),
        409,
        "merge_conflict",
    )
    assert set(raw) == {"code", "message", "conflicts"}

    loxo.create_branch(repo, "ours")
    loxo.create_branch(repo, "theirs")
    ours = loxo.merge(repo, "dev", "ours", strategy="ours")
    assert ours.outcome == "merged"
    assert sorted((c.path, c.kind) for c in ours.conflicts) == [
        (c["path"], c["kind"]) for c in conflicts
    ]
    assert loxo.inspect(repo, "ours").parents == (target, head(loxo, repo, "dev"))
    assert contents(s3, f"{repo}.ours") == {
        "a": b"main",
        "b": b"main",
        "c": b"main",
        "same": b"both",
        "only-dev": b"new",
    }
    theirs = loxo.merge(repo, "dev", "theirs", strategy="theirs", message="take theirs")
    assert theirs.outcome == "merged" and len(theirs.conflicts) == 4
    assert loxo.inspect(repo, "theirs").message == "take theirs"
    assert contents(s3, f"{repo}.theirs") == {
        "a": b"dev",
        "c": b"dev",
        "d": b"dev",
        "same": b"both",
        "only-dev": b"new",
    }
    assert head(loxo, repo) == target

    fails(400, "invalid_request", loxo.merge, repo, "dev", "main", strategy="mine")
    fails(404, "ref_not_found", loxo.merge, repo, "nope", "main")
    fails(404, "branch_not_found", loxo.merge, repo, "dev", "nope")
    api_error(
        call(server, "POST", p("repos", repo, "merge"), **json_body({"source": "dev"})),
        400,
        "invalid_request",
    )
    assert head(loxo, repo) == target


def test_revert(loxo: Client, s3: Any, repo: str) -> None:
    c1 = put(s3, repo, "a", b"one")
    c2 = put(s3, repo, "b", b"bee")
    c3 = put(s3, repo, "a", b"two")
    undone = loxo.revert(repo, c2)
    assert contents(s3, repo) == {"a": b"two"}
    info = loxo.inspect(repo, undone)
    assert info.parents == (c3,)
    assert info.message == 'Revert "PutObject b"'
    assert info.origin["op"] == "revert" and info.origin["reverted"] == c2
    assert info.changes == {"added": 0, "modified": 0, "deleted": 1}

    back = loxo.revert(repo, "main~1", branch="main", message="undo a")
    assert loxo.inspect(repo, back).message == "undo a"
    assert contents(s3, repo) == {"a": b"one"}
    assert log_ids(loxo, repo) == [back, undone, c3, c2, c1]

    c4 = put(s3, repo, "c", b"x")
    c5 = put(s3, repo, "c", b"y")
    err = fails(409, "merge_conflict", loxo.revert, repo, c4)
    assert [c["path"] for c in err.details["conflicts"]] == ["c"]
    assert head(loxo, repo) == c5
    assert contents(s3, repo)["c"] == b"y"

    # Revert onto another branch.
    loxo.create_branch(repo, "side", c3)
    side = loxo.revert(repo, c2, branch="side")
    assert loxo.inspect(repo, side).parents == (c3,)
    assert contents(s3, f"{repo}.side") == {"a": b"two"}
    fails(409, "merge_conflict", loxo.revert, repo, c1, branch="side")  # a changed since
    assert head(loxo, repo, "side") == side
    assert head(loxo, repo) == c5

    fails(404, "ref_not_found", loxo.revert, repo, "nope")
    fails(404, "branch_not_found", loxo.revert, repo, c2, branch="nope")


# --------------------------------------------------------------------------- every operation


def _job_of_version(server: Any, pipeline: str, version: int) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        items = call(server, "GET", p("jobs"), params={"pipeline": pipeline}).json()["items"]
        if items and items[0]["version"] == version:
            return str(items[0]["id"])
        time.sleep(0.1)
    raise AssertionError(f"no job of {pipeline}@{version} started")


def _drain(server: Any, pipeline: str) -> None:
    """Complete the pipeline's other datums as successes with no outputs."""
    while True:
        want = {"worker": "w", "max": 100, "pipelines": [pipeline]}
        doc = call(server, "POST", p("work", "lease"), **json_body(want))
        items = doc.json()["items"]
        if not items:
            return
        for item in items:
            done = {"attempt": item["attempt"], "outcome": "success"}
            call(server, "POST", p("work", "complete"), **json_body(done))


def test_small_files_travel_in_the_lease_and_the_complete_call(server: Any, s3: Any) -> None:
    """A small input's bytes come in the lease, a small output's go in the
    complete call (MD5-checked, limited, keys checked as S3 would), and both
    paths mix with S3 transfers in one job's output."""
    source, pipe = unique("inl"), unique("inlpipe")
    call(server, "POST", p("repos"), **json_body({"name": source}))
    small, big = b"tiny input", bytes(range(256)) * 400  # 100 KiB: read by S3
    put(s3, source, "small", small)
    put(s3, source, "big", big)
    spec = {
        "pipeline": {"name": pipe},
        "input": {"pfs": {"repo": source, "glob": "/*"}},
        "transform": {"cmd": ["true"]},
    }
    call(server, "POST", p("pipelines"), **json_body({"spec": spec}))
    want = {"worker": "w", "max": 2, "wait_seconds": 10, "pipelines": [pipe]}
    items: list[dict[str, Any]] = []
    while len(items) < 2:
        items += call(server, "POST", p("work", "lease"), **json_body(want)).json()["items"]
    by_key = {item["inputs"][0]["files"][0]["key"]: item for item in items}
    assert base64.b64decode(by_key["small"]["inputs"][0]["files"][0]["body"]) == small
    assert "body" not in by_key["big"]["inputs"][0]["files"][0]
    assert by_key["small"]["inline_outputs"] == {"file": 65536, "total": 262144}

    def output(key: str, body: bytes, md5: str | None = None) -> dict[str, str]:
        return {
            "key": key,
            "body": base64.b64encode(body).decode(),
            "md5": md5 or hashlib.md5(body).hexdigest(),
        }

    def complete(item: dict[str, Any], **extra: Any) -> httpx.Response:
        doc = {"attempt": item["attempt"], "outcome": "success", **extra}
        return call(server, "POST", p("work", "complete"), **json_body(doc))

    one = by_key["small"]
    refused = {
        "md5": [output("a", b"x", md5="0" * 32)],
        "limited": [output("a", b"x" * 65537)],
        "NUL": [output("a\x00b", b"x")],
        "twice": [output("a", b"x"), output("a", b"y")],
        "base64": [{"key": "a", "body": "not base64!"}],
    }
    for word, outputs in refused.items():
        error = api_error(complete(one, outputs=outputs), 400, "invalid_request")
        assert word in error["message"], (word, error)
    failed = {"attempt": one["attempt"], "outcome": "failed", "outputs": [output("a", b"x")]}
    api_error(
        call(server, "POST", p("work", "complete"), **json_body(failed)), 400, "invalid_request"
    )
    # Nothing refused was taken: the attempt still completes, once.
    made = output("out/small.txt", small.upper())
    assert complete(one, outputs=[made]).json()["state"] == "success"
    other = by_key["big"]
    s3.put_object(Bucket=other["output_bucket"], Key="out/big.bin", Body=big[::-1])
    assert complete(other).json()["state"] == "success"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if contents(s3, pipe) == {"out/small.txt": small.upper(), "out/big.bin": big[::-1]}:
            break
        time.sleep(0.05)
    assert contents(s3, pipe) == {"out/small.txt": small.upper(), "out/big.bin": big[::-1]}
    head = s3.head_object(Bucket=pipe, Key="out/small.txt")
    assert head["ETag"] == f'"{made["md5"]}"'
    assert head["ContentType"] == "binary/octet-stream"


def test_every_operation_answers_its_documented_status(make_server: Any) -> None:
    """Each operation of OPERATIONS, raw, in a scenario: its success status
    and body (JSON, or empty for 204). A server of its own: this test is the
    only worker of its pipeline, which a shared server's other tests'
    workers would otherwise race it for."""
    from tests.conftest import s3_client

    server = make_server()
    s3 = s3_client(server)
    name = unique()
    done: dict[str, int] = {}

    def run(op: str, method: str, where: str, doc: Any = None, **params: Any) -> Any:
        kwargs: dict[str, Any] = json_body(doc) if doc is not None else {}
        response = call(server, method, where, params=params, **kwargs)
        done[op] = response.status_code
        if response.status_code == 204:
            assert response.content == b""
            return None
        assert response.headers["content-type"].startswith("application/json"), response.text
        return response.json()

    r = p("repos", name)
    assert run("create_repo", "POST", p("repos"), {"name": name})["name"] == name
    first = put(s3, name, "f", b"1")
    second = put(s3, name, "f", b"22")
    assert run("describe_repo", "GET", r)["last_commit"] == second
    assert isinstance(run("list_repos", "GET", p("repos"), limit=1)["items"], list)
    assert run("create_branch", "POST", f"{r}/branches", {"name": "dev"})["head"] == second
    assert len(run("list_branches", "GET", f"{r}/branches")["items"]) == 2
    assert run("get_branch", "GET", f"{r}/branches/dev")["name"] == "dev"
    reset = run("reset_branch", "POST", f"{r}/branches/dev/reset", {"to": first})
    assert reset["head"] == first
    assert run("create_tag", "POST", f"{r}/tags", {"name": "t", "from": "main"})["commit"] == second
    assert [t["name"] for t in run("list_tags", "GET", f"{r}/tags")["items"]] == ["t"]
    assert run("get_tag", "GET", f"{r}/tags/t")["commit"] == second
    assert [c["id"] for c in run("log_commits", "GET", f"{r}/commits")["items"]] == [second, first]
    assert run("inspect_commit", "GET", f"{r}/commits/t")["parents"] == [first]
    diff = run("diff_refs", "GET", f"{r}/diff", **{"from": "dev", "to": "t"})
    assert diff == {
        "items": [{"path": "f", "change": "modified", "size_before": 1, "size_after": 2}],
        "next_cursor": None,
    }
    assert len(run("path_history", "GET", f"{r}/history", path="f")["items"]) == 2
    started = run("start_commit", "POST", f"{r}/open-commits", {"branch": "dev"})
    put(s3, started["bucket"], "g", b"3")
    listed = run("list_open_commits", "GET", f"{r}/open-commits")["items"]
    assert [o["id"] for o in listed] == [started["id"]]
    finished = run("finish_commit", "POST", f"{r}/open-commits/{started['id']}/finish", {})
    assert finished["commit"] is not None
    assert call(server, "GET", f"{r}/commits/{finished['commit']}").json()["message"] == "Commit"
    aborted = call(server, "POST", f"{r}/open-commits", **json_body({})).json()
    assert run("abort_commit", "DELETE", f"{r}/open-commits/{aborted['id']}") is None
    merged = run("merge_refs", "POST", f"{r}/merge", {"source": "dev", "into": "main"})
    assert merged["outcome"] == "merged" and merged["conflicts"] == []
    reverted = run("revert_commit", "POST", f"{r}/revert", {"commit": "main"})
    assert reverted["commit"] is not None
    upload = s3.create_multipart_upload(Bucket=name, Key="u")["UploadId"]
    uploads = run("list_uploads", "GET", f"{r}/uploads")["items"]
    assert [(u["id"], u["branch"], u["key"], u["parts"]) for u in uploads] == [
        (upload, "main", "u", 0)
    ]
    assert run("abort_upload", "DELETE", f"{r}/uploads/{upload}") is None
    s3.put_object(Bucket=name, Key="secret", Body=b"to be erased")
    plan = run("plan_purge", "GET", f"{r}/purge-plan", path="secret")
    assert [v["path"] for v in plan["versions"]] == ["secret"]
    purged = run(
        "purge", "POST", f"{r}/purges", {"path": "secret", "reason": "test", "confirm": True}
    )
    assert purged["path"] == "secret"
    assert [x["path"] for x in run("list_purges", "GET", f"{r}/purges")["items"]] == ["secret"]
    spec = {
        "pipeline": {"name": "planned"},
        "input": {"pfs": {"repo": name, "glob": "/f"}},
        "transform": {"cmd": ["true"]},
    }
    planned = run("plan_pipeline", "POST", p("pipelines", "plan"), {"spec": spec})
    assert [(d["decision"], d["reason"]) for d in planned["datums"]] == [("run", "new")]
    assert planned["totals"] == {"datums": 1, "run": 1, "skip": 0, "remove": 0}
    assert run("delete_tag", "DELETE", f"{r}/tags/t") is None
    assert run("delete_branch", "DELETE", f"{r}/branches/dev") is None
    trash = run("list_trash", "GET", p("trash"), repo=name)["items"]
    assert [(t["kind"], t["name"]) for t in trash] == [("branch", "dev")]
    assert run("restore_branch", "POST", f"{r}/branches/dev/restore", {})["name"] == "dev"
    assert run("delete_repo", "DELETE", r, confirm="true") is None
    assert call(server, "GET", r).status_code == 404
    assert run("restore_repo", "POST", f"{r}/restore", {})["name"] == name
    assert call(server, "GET", r).status_code == 200
    pipe = unique("pipe")
    # An input with no commit yet: no job starts until the test writes one.
    source = unique("source")
    call(server, "POST", p("repos"), **json_body({"name": source}))
    spec = {
        "pipeline": {"name": pipe},
        "input": {"pfs": {"repo": source, "glob": "/*"}},
        "transform": {"cmd": ["true"]},
        "datum_tries": 1,
    }
    made = run("create_pipeline", "POST", p("pipelines"), {"spec": spec})
    assert (made["name"], made["version"], made["input_repos"]) == (pipe, 1, [source])
    listed = run("list_pipelines", "GET", p("pipelines"))["items"]
    assert pipe in [x["name"] for x in listed]
    assert run("inspect_pipeline", "GET", p("pipelines", pipe))["state"] == "running"
    version = run("update_pipeline", "POST", p("pipelines", pipe, "versions"), {"spec": spec})
    assert version["version"] == 2
    assert run("stop_pipeline", "POST", p("pipelines", pipe, "stop"))["state"] == "stopped"
    assert run("start_pipeline", "POST", p("pipelines", pipe, "start"))["state"] == "running"
    # The scheduler starts a job over the input's head; this test is its worker.
    put(s3, source, "f", b"1")
    job = _job_of_version(server, pipe, 2)
    mine = {"worker": "w", "wait_seconds": 10, "pipelines": [pipe]}
    leased = run("lease_datums", "POST", p("work", "lease"), mine)
    attempt = leased["items"][0]["attempt"]
    assert (
        run("heartbeat", "POST", p("work", "heartbeat"), {"worker": "w", "attempts": [attempt]})[
            "lost"
        ]
        == []
    )
    failed = {"attempt": attempt, "outcome": "failed", "stderr": "boom", "exit_code": 3}
    assert run("complete_datum", "POST", p("work", "complete"), failed)["state"] == "failed"
    datum = leased["items"][0]["datum"]
    _drain(server, pipe)
    assert run("inspect_job", "GET", p("jobs", job))["id"] == job
    assert job in [j["id"] for j in run("list_jobs", "GET", p("jobs"), pipeline=pipe)["items"]]
    assert datum in [d["id"] for d in run("list_datums", "GET", p("jobs", job, "datums"))["items"]]
    assert run("inspect_datum", "GET", p("jobs", job, "datums", datum))["state"] == "failed"
    assert "boom" in [x["text"] for x in run("logs", "GET", p("logs"), job=job)["items"]]
    restarted = run("restart_datum", "POST", p("jobs", job, "datums", datum, "restart"))
    assert restarted["state"] == "pending"
    assert run("stop_job", "POST", p("jobs", job, "stop"))["state"] == "killed"
    assert run("wait_status", "GET", p("wait"), repo=source, commit="main")["done"] is True
    assert pipe in [x["name"] for x in run("dag", "GET", p("dag"))["pipelines"]]
    assert run("provenance", "GET", p("provenance"), repo=source, path="f")["producer"] is None
    assert run("subvenance", "GET", p("subvenance"), repo=source, path="f")["derived"] == []
    assert run("delete_pipeline", "DELETE", p("pipelines", pipe), confirm="true") is None

    assert done == {op.name: op.status for op in OPERATIONS}


# --------------------------------------------------------------------------- protocol


def test_unsigned_and_badly_signed_requests(server: Any, loxo: Client) -> None:
    url = server.endpoint + p("repos")
    api_error(httpx.get(url), 401, "unauthenticated")
    api_error(httpx.post(url, json={"name": unique()}), 401, "unauthenticated")
    api_error(call(server, "GET", p("repos"), secret="wrong-secret"), 403, "access_denied")
    api_error(call(server, "GET", p("repos"), access="nobody"), 403, "access_denied")
    name = unique()
    api_error(
        call(server, "POST", p("repos"), secret="wrong-secret", **json_body({"name": name})),
        403,
        "access_denied",
    )
    fails(404, "repo_not_found", loxo.describe_repo, name)  # nothing was done

    with Client(server.endpoint, server.access_key, "wrong-secret") as bad:
        err = fails(403, "access_denied", bad.create_repo, name)
        assert err.details == {}
    fails(404, "repo_not_found", loxo.describe_repo, name)

    # The body is signed: another body than the one signed is refused.
    signed = sign(server, "POST", p("repos"), **json_body({"name": name}))
    tampered = json.dumps({"name": name + "-x"}).encode()
    forged = httpx.Request("POST", signed.url, content=tampered, headers=signed.headers)
    forged.headers["content-length"] = str(len(tampered))
    with httpx.Client() as http:
        api_error(http.send(forged), 400, "invalid_request")  # x-amz-content-sha256 mismatch
    fails(404, "repo_not_found", loxo.describe_repo, name + "-x")


def test_routing_errors_and_bad_input(server: Any, repo: str) -> None:
    api_error(call(server, "GET", API + "/nope"), 404, "not_found")
    api_error(call(server, "GET", API), 404, "not_found")
    api_error(call(server, "GET", p("repos", repo, "branches", "main", "extra")), 404, "not_found")
    api_error(httpx.get(server.endpoint + API + "/nope"), 404, "not_found")
    api_error(call(server, "PUT", p("repos")), 405, "method_not_allowed")
    api_error(call(server, "PATCH", p("repos", repo)), 405, "method_not_allowed")
    api_error(call(server, "GET", p("repos", repo, "merge")), 405, "method_not_allowed")
    api_error(
        call(server, "DELETE", p("repos", repo, "commits", "main")), 405, "method_not_allowed"
    )

    for body in (b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"):
        response = call(
            server, "POST", p("repos"), body=body, headers={"content-type": "application/json"}
        )
        api_error(response, 400, "invalid_request")
    for doc in ({}, {"name": 5}, {"name": {"nested": 1}}, {"name": ["a"]}):
        api_error(call(server, "POST", p("repos"), **json_body(doc)), 400, "invalid_request")
    api_error(
        call(server, "POST", p("repos", repo, "branches"), **json_body({"name": "b", "from": 7})),
        400,
        "invalid_request",
    )
    for limit in ("0", "-1", "abc", "10001", "1.5", ""):
        api_error(
            call(server, "GET", p("repos", repo, "branches"), params={"limit": limit}),
            400,
            "invalid_request",
        )
    ok = call(server, "GET", p("repos", repo, "branches"), params={"limit": "10000"})
    assert ok.status_code == 200 and [b["name"] for b in ok.json()["items"]] == ["main"]
    big = json.dumps({"name": "x" * (1 << 20)}).encode()
    api_error(call(server, "POST", p("repos"), body=big), 400, "invalid_request")


def test_openapi_document(server: Any) -> None:
    response = httpx.get(server.endpoint + API + "/openapi.json")  # no signature needed
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    doc = response.json()
    assert doc["openapi"] == "3.1.0"
    operations = {(API + op.path, op.method.lower()): op for op in OPERATIONS}
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert documented == set(operations)
    assert len(operations) == 53
    for (path, method), op in operations.items():
        spec = doc["paths"][path][method]
        assert spec["operationId"] == op.name
        assert str(op.status) in spec["responses"]
        declared = {q["name"] for q in spec["parameters"] if q["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", op.path)), path
    codes = set(
        doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    )
    assert {
        "unauthenticated",
        "access_denied",
        "not_found",
        "method_not_allowed",
        "invalid_request",
        "confirmation_required",
        "repo_exists",
        "merge_conflict",
        "head_moved",
        "open_commit_not_found",
    } <= codes

    # Every documented path routes: a missing repo answers its own error,
    # never not_found or method_not_allowed.
    missing = unique("api-none")
    for (path, method), op in operations.items():
        concrete = path.replace("{repo}", missing)
        concrete = re.sub(r"\{\w+\}", "x1234567", concrete)
        response = call(server, method.upper(), concrete, **json_body({}))
        assert response.status_code != 405, (op.name, response.text)
        if response.status_code == 404:
            assert response.json()["error"]["code"] != "not_found", op.name


def plain(server: Any, method: str, path: str, service: str, **kwargs: Any) -> httpx.Response:
    """A request signed by botocore's plain SigV4 signer (other AWS services'):
    no x-amz-content-sha256 header, the body's hash signed."""
    request = sign(server, method, path, service=service, s3_signer=False, **kwargs)
    assert "x-amz-content-sha256" not in {k.lower() for k in request.headers}
    assert f"/{service}/aws4_request" in request.headers["authorization"]
    with httpx.Client(timeout=60) as http:
        return http.send(request)


def test_plain_sigv4_signer_signs_the_body(server: Any, loxo: Client, s3: Any) -> None:
    name = unique()
    created = plain(server, "POST", p("repos"), "s3", **json_body({"name": name}))
    assert created.status_code == 201, created.text
    assert created.json()["name"] == name
    assert loxo.describe_repo(name).default_branch == "main"
    # Without the header the signature still covers the body: another body is refused.
    request = sign(server, "POST", p("repos"), s3_signer=False, **json_body({"name": name + "-a"}))
    other = json.dumps({"name": name + "-b"}).encode()
    forged = httpx.Request("POST", request.url, content=other, headers=request.headers)
    forged.headers["content-length"] = str(len(other))
    with httpx.Client() as http:
        api_error(http.send(forged), 403, "access_denied")
    fails(404, "repo_not_found", loxo.describe_repo, name + "-a")
    fails(404, "repo_not_found", loxo.describe_repo, name + "-b")
    c1 = put(s3, name, "a", b"1")
    listed = plain(server, "GET", p("repos", name, "commits"), "s3", params={"limit": 1})
    assert listed.status_code == 200, listed.text
    assert [c["id"] for c in listed.json()["items"]] == [c1]


def test_sigv4_for_another_service(server: Any, loxo: Client) -> None:
    """auth.py: any SigV4 signer works, with any region and service name in
    its scope (e.g. API Gateway's execute-api)."""
    name = unique()
    created = plain(server, "POST", p("repos"), "execute-api", **json_body({"name": name}))
    assert created.status_code == 201, created.text
    assert loxo.describe_repo(name).name == name


def test_sigv4_for_another_service_with_an_escaped_path(server: Any, loxo: Client, s3: Any) -> None:
    """Signers of services other than S3 encode the path twice in the
    canonical request (AWS SigV4): a ref like main^ (main%5E) must still pass."""
    name = unique()
    loxo.create_repo(name)
    c1 = put(s3, name, "a", b"1")
    put(s3, name, "a", b"2")
    parent = plain(server, "GET", p("repos", name, "commits", "main^"), "execute-api")
    assert parent.status_code == 200, parent.text
    assert parent.json()["id"] == c1


def test_presigned_url(server: Any, loxo: Client) -> None:
    name = unique()
    loxo.create_repo(name)
    aws = AWSRequest(method="GET", url=server.endpoint + p("repos", name, "branches"))
    creds = Credentials(server.access_key, server.secret_key)
    SigV4QueryAuth(creds, "s3", REGION, expires=60).add_auth(aws)
    presigned = httpx.get(aws.url)
    assert presigned.status_code == 200, presigned.text
    assert [b["name"] for b in presigned.json()["items"]] == ["main"]
    broken = aws.url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    api_error(httpx.get(broken), 403, "access_denied")
    # S3's presigner signs UNSIGNED-PAYLOAD instead of the empty body's hash.
    s3_style = AWSRequest(method="GET", url=server.endpoint + p("repos", name, "branches"))
    S3SigV4QueryAuth(creds, "s3", REGION, expires=60).add_auth(s3_style)
    assert "UNSIGNED-PAYLOAD" not in s3_style.url  # (it is implied, not sent)
    presigned = httpx.get(s3_style.url)
    assert presigned.status_code == 200, presigned.text


def test_curl_aws_sigv4(server: Any, loxo: Client) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    name = unique()
    proc = subprocess.run(
        [
            curl,
            "--silent",
            "--show-error",
            "--aws-sigv4",
            f"aws:amz:{REGION}:s3",
            "--user",
            f"{server.access_key}:{server.secret_key}",
            "--header",
            "content-type: application/json",
            "--data",
            json.dumps({"name": name}),
            "--write-out",
            "\n%{http_code}",
            server.endpoint + p("repos"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    text, _, status = proc.stdout.rpartition("\n")
    assert status == "201", proc.stdout
    assert json.loads(text)["default_branch"] == "main"
    assert loxo.describe_repo(name).name == name


# --------------------------------------------------------------------------- AsyncClient


def test_async_client(server: Any, s3: Any) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.endpoint, server.access_key, server.secret_key) as loxo:
            name = unique()
            repo = await loxo.create_repo(name)
            assert (repo.name, repo.default_branch) == (name, "main")
            # Concurrent creates of one name: exactly one wins.
            racers = await asyncio.gather(
                *(loxo.create_repo(name + "-race") for _ in range(5)), return_exceptions=True
            )
            assert sum(not isinstance(r, BaseException) for r in racers) == 1
            losers = [r for r in racers if isinstance(r, BaseException)]
            assert all(isinstance(r, LoxoError) and r.code == "repo_exists" for r in losers)

            oc = await loxo.start_commit(name)
            for i in range(3):
                await asyncio.to_thread(put, s3, oc.bucket, f"k{i}", b"v" * (i + 1))
            assert [o.id async for o in loxo.list_open_commits(name)] == [oc.id]
            # Two finishes at once make one commit; the other finds no open commit.
            finishes = await asyncio.gather(
                loxo.finish_commit(name, oc.id, "async batch"),
                loxo.finish_commit(name, oc.id, "async batch"),
                return_exceptions=True,
            )
            ids = [f for f in finishes if isinstance(f, str)]
            assert len(ids) == 1, finishes
            assert all(
                isinstance(f, LoxoError) and f.code == "open_commit_not_found"
                for f in finishes
                if not isinstance(f, str)
            )
            first = ids[0]
            assert [c.id async for c in loxo.log(name)] == [first]
            assert (await loxo.inspect(name)).size == 6
            targets = []
            for i in range(5):
                targets.append(await asyncio.to_thread(put, s3, name, f"t{i}", b"t"))
            tip = targets[-1]
            for i in range(5):
                await loxo.create_branch(name, f"b{i}", first)
            assert [b.name async for b in loxo.list_branches(name)] == [
                "b0",
                "b1",
                "b2",
                "b3",
                "b4",
                "main",
            ]

            # Compare-and-set under concurrency: one reset wins, the others see head_moved.
            results = await asyncio.gather(
                *(loxo.reset_branch(name, "b0", t, first) for t in targets),
                return_exceptions=True,
            )
            winners = [r for r in results if not isinstance(r, BaseException)]
            assert len(winners) == 1
            assert all(
                isinstance(r, LoxoError) and (r.status, r.code) == (409, "head_moved")
                for r in results
                if isinstance(r, BaseException)
            )
            assert (await loxo.get_branch(name, "b0")).head == winners[0].head

            result = await loxo.merge(name, "main", "b1")
            assert (result.outcome, result.commit) == ("fast-forward", tip)
            diff = [c async for c in loxo.diff(name, first, "b1")]
            assert [c.path for c in diff] == [f"t{i}" for i in range(5)]
            assert [v.commit async for v in loxo.history(name, "t4")] == [tip]
            await loxo.create_tag(name, "rel", "b1~2")
            assert [t.commit async for t in loxo.list_tags(name)] == [targets[2]]
            await loxo.delete_tag(name, "rel")
            await loxo.delete_branch(name, "b4")
            await loxo.abort_commit(name, (await loxo.start_commit(name)).id)
            revert = await loxo.revert(name, tip)
            assert (await loxo.inspect(name, revert)).changes["deleted"] == 1

            with pytest.raises(LoxoError) as info:
                await loxo.describe_repo(unique("api-none"))
            assert (info.value.status, info.value.code) == (404, "repo_not_found")
            assert [r.name async for r in loxo.list_repos() if r.name.startswith(name)] == [
                name,
                name + "-race",
            ]
            await loxo.delete_repo(name + "-race", confirm=True)
            await loxo.delete_repo(name, confirm=True)
            with pytest.raises(LoxoError) as info:
                await loxo.describe_repo(name)
            assert info.value.code == "repo_not_found"

    asyncio.run(scenario())


# --------------------------------------------------------------------------- review fixes


def test_names_fit_s3_bucket_names(loxo: Client) -> None:
    """A repo's snapshot bucket repo.<32 hex> must fit 63 characters, and so
    must repo.<branch or tag>."""
    fails(400, "invalid_name", loxo.create_repo, "r" * 64)
    fails(400, "invalid_name", loxo.create_repo, "ab")
    name = unique("n") + "x" * 12
    assert len(name) <= 30
    loxo.create_repo(name)
    longest = "b" * (63 - len(name) - 1)
    assert loxo.create_branch(name, longest).name == longest
    fails(400, "invalid_name", loxo.create_branch, name, longest + "b")
    fails(400, "invalid_name", loxo.create_tag, name, longest + "t")


def test_out_of_range_values_are_bad_requests(server: Any, repo: str) -> None:
    for bad in ("inf", "nan", "1e300", "-1e300"):
        response = call(server, "GET", p("repos", repo, "commits"), params={"since": bad})
        api_error(response, 400, "invalid_request")
    for idle in (True, 1e300, -1, 0, "5"):
        response = call(
            server, "POST", p("repos", repo, "open-commits"), **json_body({"idle_seconds": idle})
        )
        api_error(response, 400, "invalid_request")


def test_a_body_must_be_signed(server: Any, repo: str) -> None:
    body = json.dumps({"name": "unsigned-tag"}).encode()
    response = call(
        server,
        "POST",
        p("repos", repo, "tags"),
        body=body,
        headers={"content-type": "application/json", "x-amz-content-sha256": "UNSIGNED-PAYLOAD"},
        s3_signer=False,  # botocore's S3 signer would replace the header with the hash
    )
    api_error(response, 400, "invalid_request")
    assert call(server, "GET", p("repos", repo, "tags", "unsigned-tag")).status_code == 404


def test_deleting_a_branch_aborts_its_open_commits(server: Any, loxo: Client, s3: Any) -> None:
    repo = unique()
    loxo.create_repo(repo)
    loxo.create_branch(repo, "side")
    opened = loxo.start_commit(repo, "side")
    put(s3, opened.bucket, "k", b"v")
    loxo.delete_branch(repo, "side")
    assert list(loxo.list_open_commits(repo)) == []
    fails(404, "open_commit_not_found", loxo.finish_commit, repo, opened.id, "late")
    # A new branch of the same name does not inherit it.
    loxo.create_branch(repo, "side")
    assert loxo.get_branch(repo, "side").head is None


def test_a_branch_and_a_tag_racing_for_one_name(server: Any, s3: Any) -> None:
    """Branches and tags share one namespace even when created at once."""

    async def scenario() -> None:
        async with AsyncClient(server.endpoint, server.access_key, server.secret_key) as loxo:
            name = unique()
            await loxo.create_repo(name)
            await asyncio.to_thread(put, s3, name, "k", b"v")
            for round_ in range(5):
                ref = f"both-{round_}"
                results = await asyncio.gather(
                    loxo.create_branch(name, ref, "main"),
                    loxo.create_tag(name, ref, "main"),
                    return_exceptions=True,
                )
                won = [r for r in results if not isinstance(r, BaseException)]
                lost = [r for r in results if isinstance(r, BaseException)]
                assert len(won) == 1, results
                assert isinstance(lost[0], LoxoError)
                assert lost[0].code in ("branch_exists", "tag_exists"), lost[0]

    asyncio.run(scenario())
