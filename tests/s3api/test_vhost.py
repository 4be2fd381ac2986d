"""Virtual-host-style addressing: which bucket a Host header names, and how the path
then splits into bucket and key. Pure functions, no server."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from s3api.app import S3App, _split_path, bucket_from_host
from s3api.buckets import parse_bucket

LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
# loxo's valid bucket names: `repo` or `repo.branch` (or `repo.<commit>`), 3-63 chars
BUCKETS = (
    st.lists(LABEL, min_size=1, max_size=2).map(".".join).filter(lambda name: 3 <= len(name) <= 63)
)
DOMAINS = st.lists(LABEL, min_size=1, max_size=4).map(".".join)
PORTS = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))


@given(BUCKETS, DOMAINS)
def test_bucket_before_the_domain(bucket: str, domain: str) -> None:
    parse_bucket(bucket)  # the strategy only makes valid names
    assert bucket_from_host(f"{bucket}.{domain}:9000", (domain,)) == bucket


@given(BUCKETS, DOMAINS, PORTS)
def test_port_case_and_trailing_dot_do_not_matter(bucket: str, domain: str, port: str) -> None:
    assert bucket_from_host(f"{bucket}.{domain}{port}", (domain,)) == bucket
    assert bucket_from_host(f"{bucket}.{domain}.{port}", (domain,)) == bucket
    assert bucket_from_host(f"{bucket}.{domain}{port}".upper(), (domain,)) == bucket


@given(DOMAINS, PORTS)
def test_the_bare_domain_is_path_style(domain: str, port: str) -> None:
    assert bucket_from_host(f"{domain}{port}", (domain,)) is None
    assert bucket_from_host(f".{domain}{port}", (domain,)) is None


@given(BUCKETS, DOMAINS, DOMAINS)
def test_unrelated_hosts_are_path_style(bucket: str, domain: str, other: str) -> None:
    assume(not f"{bucket}.{other}".endswith("." + domain))
    assert bucket_from_host(f"{bucket}.{other}:9000", (domain,)) is None
    assert bucket_from_host(f"{bucket}x{domain}:9000", (domain,)) is None  # not on a dot


@given(BUCKETS, DOMAINS)
def test_no_domains_means_path_style(bucket: str, domain: str) -> None:
    assert bucket_from_host(f"{bucket}.{domain}", ()) is None


@given(st.text(max_size=80), st.lists(DOMAINS, max_size=3).map(tuple))
def test_any_host_gives_none_or_a_prefix(host: str, domains: tuple[str, ...]) -> None:
    found = bucket_from_host(host, domains)
    assert found is None or (found and found in host.lower())


@pytest.mark.parametrize(
    "host",
    [None, "", "127.0.0.1", "127.0.0.1:9000", "localhost:9000", "[::1]:9000", "[::1]", "x"],
)
def test_loopback_and_missing_hosts(host: str | None) -> None:
    assert bucket_from_host(host, ("s3.localtest", "localhost")) is None


def test_longest_domain_wins() -> None:
    domains = ("example.com", "s3.example.com")
    assert bucket_from_host("repo.dev.s3.example.com", domains) == "repo.dev"
    assert bucket_from_host("repo.dev.example.com", domains) == "repo.dev"
    assert bucket_from_host("s3.example.com", domains) == "s3"  # a bucket under example.com


def test_split_path_style() -> None:
    assert _split_path(b"/") == (None, None)
    assert _split_path(b"/repo.dev") == ("repo.dev", None)
    assert _split_path(b"/repo.dev/") == ("repo.dev", None)
    assert _split_path(b"/repo/a/b%20c") == ("repo", "a/b c")


def test_split_virtual_host_style() -> None:
    assert _split_path(b"/", "repo.dev") == ("repo.dev", None)
    assert _split_path(b"/a/b%20c", "repo.dev") == ("repo.dev", "a/b c")
    # the first path segment is part of the key, not a bucket
    assert _split_path(b"/other/key", "repo") == ("repo", "other/key")
    assert _split_path(b"//lead", "repo") == ("repo", "/lead")


def _scope(host: str, raw_path: bytes, query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": raw_path.decode(),
        "raw_path": raw_path,
        "query_string": query,
        "headers": [(b"host", host.encode())],
    }


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


@pytest.mark.parametrize(
    ("host", "raw_path", "bucket", "key"),
    [
        ("repo.dev.s3.localtest:9000", b"/dir/file.txt", "repo.dev", "dir/file.txt"),
        ("repo.s3.localtest", b"/", "repo", None),
        ("s3.localtest:9000", b"/repo/dir/file.txt", "repo", "dir/file.txt"),
        ("127.0.0.1:9000", b"/repo.dev/file.txt", "repo.dev", "file.txt"),
        ("elsewhere.example:9000", b"/repo/file.txt", "repo", "file.txt"),
    ],
)
def test_parse_takes_the_bucket_from_the_host(
    host: str, raw_path: bytes, bucket: str, key: str | None
) -> None:
    app = S3App(None, lambda access_key: None, ("s3.localtest",))  # type: ignore[arg-type]
    req = app._parse(_scope(host, raw_path), _no_body, "REQ")
    assert (req.bucket_name, req.key) == (bucket, key)


def test_parse_without_domains_is_path_style() -> None:
    app = S3App(None, lambda access_key: None)  # type: ignore[arg-type]
    req = app._parse(_scope("repo.s3.localtest", b"/a/b"), _no_body, "REQ")
    assert (req.bucket_name, req.key) == ("a", "b")
