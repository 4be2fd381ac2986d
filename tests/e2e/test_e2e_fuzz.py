"""A seeded fuzz run against a live server: malformed headers, query strings,
XML bodies, JSON bodies and aws-chunked bodies, correctly signed so they get
past authentication, on the S3 routes and the control API.

Every request must get a complete HTTP response (no dropped connection) with
a status below 500; the server log must hold no traceback; and a request that
was refused (4xx) must have changed nothing (repos, commits, branch heads,
tags, open commits, uploads and parts are compared in PostgreSQL around every
request that could write).

Seeded: LOXO_FUZZ_SEED=<n> replays a run (the seed is printed on failure);
LOXO_FUZZ_REQUESTS sets how many requests (default 480, about 20 s).
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from hostile import API, Answer, signed

from gateway.signing import sigv4
from s3api import chunked

SEED = int(os.environ.get("LOXO_FUZZ_SEED", "20261204"))
REQUESTS = int(os.environ.get("LOXO_FUZZ_REQUESTS", "480"))

# Text fragments that have broken parsers before: numbers too long for int(),
# digits int() refuses, NUL, line breaks, lone surrogates, invalid UTF-8,
# broken escapes, markup.
TEXT = [
    "",
    "0",
    "-1",
    "+7",
    "1e3",
    "9" * 5000,
    "0" * 4400 + "1",
    "\u00b2",
    "\u0661",
    "\x00",
    "a\x00b",
    "\r\n",
    "x\r\nx-injected: 1",
    "\n",
    "\t",
    "\x01",
    "\x7f",
    "\ud800",
    "\udfff",
    "\u20ac",
    "na\u00efve",
    "\U0001f600",
    " ",
    "a" * 3000,
    "bytes=",
    "bytes=0-",
    "bytes=-0",
    "bytes=1-2,3-4",
    "bytes=5-3",
    "bytes=" + "9" * 5000 + "-",
    "bytes=0-" + "9" * 5000,
    "null",
    "main",
    "main~1",
    "main^",
    "<",
    "&amp;",
    "'",
    '"',
    "\\",
    "/",
    "../..",
    "*",
    "?",
    "%",
    "%G1",
]
RAW_QUERY = ["%", "%G1", "%FF", "%ED%A0%80", "%00", "%0D%0A", "%C0%80", "+", "&&", "=="]


def pick_text(rng: random.Random) -> str:
    out = "".join(rng.choice(TEXT) for _ in range(rng.choice((1, 1, 1, 2, 3))))
    return out[:6000]


def query_value(rng: random.Random) -> str:
    """A percent-encoded query value: random text, or raw broken escapes."""
    if rng.random() < 0.2:
        return rng.choice(RAW_QUERY)
    return quote(pick_text(rng).encode("utf-8", "surrogatepass"), safe="")


def header_value(rng: random.Random) -> str:
    """A header value as Latin-1 text (control bytes included, now and then:
    those are the HTTP parser's to refuse)."""
    text = pick_text(rng)
    raw = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.85:
        raw = re.sub(rb"[\x00-\x08\x0a-\x1f\x7f]", b"", raw)
    return raw.decode("latin-1")


def mutate(rng: random.Random, data: bytes) -> bytes:
    """A few random edits: cut, duplicate, flip a byte, insert a fragment."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        pos = rng.randint(0, len(out)) if out else 0
        if choice < 0.25 and out:
            del out[pos : pos + rng.randint(1, 20)]
        elif choice < 0.5 and out:
            out[pos:pos] = out[max(0, pos - 30) : pos]
        elif choice < 0.7 and out:
            out[min(pos, len(out) - 1)] = rng.randrange(256)
        else:
            out[pos:pos] = pick_text(rng).encode("utf-8", "surrogatepass")[:6000]
    return bytes(out)


def xml_body(rng: random.Random, etag: str) -> bytes:
    docs = [
        b"<Delete><Object><Key>nope</Key></Object><Quiet>true</Quiet></Delete>",
        (
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"
            f"{etag}</ETag></Part></CompleteMultipartUpload>"
        ).encode(),
        b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>",
    ]
    doc = rng.choice(docs)
    kind = rng.random()
    if kind < 0.15:
        return b"<!DOCTYPE x [<!ENTITY a 'aaaa'>]>" + doc
    if kind < 0.3:
        depth = rng.choice((40, 1000, 50_000))
        return doc[:-9] + b"<a>" * depth + b"</a>" * depth + doc[-9:]
    if kind < 0.4:
        return doc.replace(b"1</PartNumber>", ("9" * 5000 + "</PartNumber>").encode())
    return mutate(rng, doc)


def json_body(rng: random.Random) -> bytes:
    base: dict[str, Any] = {
        "name": "fz-" + uuid.uuid4().hex[:6],
        "from": "main",
        "to": "main",
        "source": "main",
        "into": "main",
        "commit": "main~99",
        "branch": "no-such-branch",
        "idle_seconds": 5,
        "message": "m",
    }
    kind = rng.random()
    if kind < 0.1:
        depth = rng.choice((20, 5000, 100_000))
        return b"[" * depth + b"]" * depth
    if kind < 0.2:
        return b'{"name": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    if kind < 0.3:
        return b'{"idle_seconds": ' + b"9" * 5000 + b"}"
    doc = {k: v for k, v in base.items() if rng.random() < 0.5}
    for _ in range(rng.randint(1, 3)):
        field = rng.choice([*base, "expected_head", "strategy", "author", "\x00"])
        doc[field] = rng.choice(
            [pick_text(rng), None, True, 1e308, -1, [pick_text(rng)], {"a": pick_text(rng)}]
        )
    text = json.dumps(doc)  # \ud800 and \u0000 go out as JSON escapes
    raw = text.encode("utf-8", "surrogatepass")
    return mutate(rng, raw) if rng.random() < 0.3 else raw


def chunked_body(rng: random.Random) -> tuple[bytes, dict[str, str]]:
    data = os.urandom(rng.choice((0, 1, 100, 70_000)))
    junk = header_value(rng)[:50].encode("latin-1").decode("ascii", "replace")
    trailer = [(rng.choice(["x-amz-checksum-crc32", "x-other"]), rng.choice(["AAAAAA==", junk]))]
    framed = chunked.encode([data[:40_000], data[40_000:]], trailers=trailer)
    if rng.random() < 0.8:
        framed = mutate(rng, framed)
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": rng.choice([str(len(data)), header_value(rng)]),
    }
    if rng.random() < 0.5:
        headers["x-amz-trailer"] = rng.choice(["x-amz-checksum-crc32", header_value(rng)])
    return framed, headers


# --------------------------------------------------------------------------- state


STATE_SQL = """
SELECT (SELECT count(*) FROM repos),
       (SELECT count(*) FROM commits),
       (SELECT string_agg(repo || '/' || name || '/' || coalesce(encode(head, 'hex'), ''), ','
                          ORDER BY repo, name) FROM branches),
       (SELECT count(*) FROM tags),
       (SELECT count(*) FROM open_commits),
       (SELECT count(*) FROM uploads),
       (SELECT count(*) FROM upload_parts)
"""


def state(db: Any) -> tuple[Any, ...]:
    return tuple(db.fetch(STATE_SQL)[0])


# --------------------------------------------------------------------------- the run


def test_fuzz_both_apis(server: Any, s3: Any, db: Any, new_bucket: Any) -> None:
    rng = random.Random(SEED)
    bucket = new_bucket("fz")
    s3.put_object(Bucket=bucket, Key="k", Body=bytes(range(256)) * 40)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"p")["ETag"]
    repo = "fzr-" + uuid.uuid4().hex[:8]
    created = signed(server, "POST", f"{API}/repos", json.dumps({"name": repo}).encode())
    assert created.status == 201, created.body
    uid = quote(upload, safe="")
    log_start = len(server.log_text())

    def s3_read() -> tuple[str, str, bytes, dict[str, str], str | None]:
        headers = {}
        for name in rng.sample(
            [
                "Range",
                "If-Match",
                "If-None-Match",
                "If-Modified-Since",
                "x-amz-checksum-mode",
                "x-amz-copy-source-range",
            ],
            rng.randint(1, 3),
        ):
            headers[name] = header_value(rng)
        params = rng.sample(
            [
                "partNumber",
                "versionId",
                "response-content-type",
                "response-content-disposition",
                "response-cache-control",
                "response-expires",
                "response-content-language",
                "response-content-encoding",
            ],
            rng.randint(0, 2),
        )
        query = "&".join(f"{p}={query_value(rng)}" for p in params)
        key = rng.choice(["k", "k", "mp", quote(pick_text(rng).encode("utf-8", "surrogatepass"))])
        method = rng.choice(["GET", "HEAD"])
        return method, f"/{bucket}/{key}" + (f"?{query}" if query else ""), b"", headers, None

    def s3_list() -> tuple[str, str, bytes, dict[str, str], str | None]:
        base = rng.choice(["list-type=2", "", "versions", "uploads", f"uploadId={uid}"])
        params = rng.sample(
            [
                "prefix",
                "marker",
                "max-keys",
                "delimiter",
                "continuation-token",
                "start-after",
                "encoding-type",
                "fetch-owner",
                "key-marker",
                "version-id-marker",
                "upload-id-marker",
                "max-uploads",
                "max-parts",
                "part-number-marker",
            ],
            rng.randint(1, 4),
        )
        query = "&".join([base, *(f"{p}={query_value(rng)}" for p in params)]).strip("&")
        path = f"/{bucket}/mp" if base.startswith("uploadId") else f"/{bucket}"
        return "GET", f"{path}?{query}", b"", {}, None

    def s3_put() -> tuple[str, str, bytes, dict[str, str], str | None]:
        headers = {}
        for name in rng.sample(
            [
                "Content-MD5",
                "x-amz-checksum-crc32",
                "x-amz-checksum-sha256",
                "x-amz-sdk-checksum-algorithm",
                "If-Match",
                "x-amz-decoded-content-length",
                "x-amz-trailer",
                "x-amz-copy-source",
                "x-amz-metadata-directive",
            ],
            rng.randint(1, 3),
        ):
            headers[name] = header_value(rng)
        # one header that always refuses the write, whatever else happens to be valid
        headers["Content-MD5"] = rng.choice(["AAAAAAAAAAAAAAAAAAAAAA==", "%%%", ""])
        for _ in range(rng.randint(0, 2)):
            headers[rng.choice(["x-amz-meta-a", "Content-Type", "Content-Disposition"])] = (
                header_value(rng)
            )
        target = rng.choice(
            [
                f"/{bucket}/w",
                f"/{bucket}/mp?uploadId={uid}&partNumber={query_value(rng)}",
                f"/{bucket}/mp?uploadId={query_value(rng)}&partNumber=2",
                f"/{bucket}/{quote(pick_text(rng).encode('utf-8', 'surrogatepass'))}",
            ]
        )
        return "PUT", target, os.urandom(rng.choice((0, 10, 5000))), headers, None

    def s3_xml() -> tuple[str, str, bytes, dict[str, str], str | None]:
        target = rng.choice([f"/{bucket}?delete", f"/{bucket}/mp?uploadId={uid}"])
        method = "POST"
        if rng.random() < 0.2:
            method, target = "PUT", f"/{bucket}?versioning"
        return method, target, xml_body(rng, etag), {}, None

    def s3_chunked() -> tuple[str, str, bytes, dict[str, str], str | None]:
        body, headers = chunked_body(rng)
        target = rng.choice([f"/{bucket}/c", f"/{bucket}/mp?uploadId={uid}&partNumber=3"])
        return "PUT", target, body, headers, sigv4.STREAMING_UNSIGNED_PAYLOAD_TRAILER

    posts = [
        f"{API}/repos",
        f"{API}/repos/{repo}/branches",
        f"{API}/repos/{repo}/tags",
        f"{API}/repos/{repo}/branches/main/reset",
        f"{API}/repos/{repo}/open-commits",
        f"{API}/repos/{repo}/open-commits/{'0' * 32}/finish",
        f"{API}/repos/{repo}/merge",
        f"{API}/repos/{repo}/revert",
    ]

    def api_post() -> tuple[str, str, bytes, dict[str, str], str | None]:
        return "POST", rng.choice(posts), json_body(rng), {"content-type": "application/json"}, None

    def api_get() -> tuple[str, str, bytes, dict[str, str], str | None]:
        junk = quote(pick_text(rng).encode("utf-8", "surrogatepass"), safe="") or "x"
        path = rng.choice(
            [
                f"{API}/repos",
                f"{API}/repos/{repo}/branches",
                f"{API}/repos/{repo}/tags",
                f"{API}/repos/{repo}/commits",
                f"{API}/repos/{repo}/history",
                f"{API}/repos/{repo}/diff",
                f"{API}/repos/{repo}/open-commits",
                f"{API}/repos/{junk}",
                f"{API}/repos/{repo}/branches/{junk}",
                f"{API}/repos/{repo}/tags/{junk}",
                f"{API}/repos/{repo}/commits/{junk}",
            ]
        )
        params = rng.sample(
            ["limit", "cursor", "ref", "path", "since", "until", "from", "to", "prefix"],
            rng.randint(0, 3),
        )
        query = "&".join(f"{p}={query_value(rng)}" for p in params)
        method = "GET"
        if path.endswith(junk) and rng.random() < 0.3:
            method = "DELETE"  # a junk name: never one that exists
            path = path[: -len(junk)] + "zz" + uuid.uuid4().hex[:6] + junk
        return method, path + (f"?{query}" if query else ""), b"", {}, None

    generators: list[tuple[Callable[[], tuple[str, str, bytes, dict[str, str], str | None]], int]]
    generators = [
        (s3_read, 3),
        (s3_list, 3),
        (s3_put, 3),
        (s3_xml, 2),
        (s3_chunked, 2),
        (api_post, 3),
        (api_get, 3),
    ]
    population = [g for g, weight in generators for _ in range(weight)]
    failures: list[str] = []
    statuses: dict[int, int] = {}
    started = time.monotonic()
    for n in range(REQUESTS):
        method, target, body, headers, payload_hash = rng.choice(population)()
        writes = method not in ("GET", "HEAD")
        before = state(db) if writes else None
        answer: Answer = _send(server, method, target, body, headers, payload_hash, rng)
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
        what = f"#{n} {method} {target[:150]!r} headers={str(headers)[:300]}"
        if answer.status == 0:
            failures.append(f"{what}: no complete response ({answer.error})")
        elif answer.status >= 500:
            failures.append(f"{what}: {answer.status} {answer.body[:300]!r}")
        elif writes and answer.status >= 400 and state(db) != before:
            failures.append(f"{what}: refused with {answer.status}, yet the state changed")
        if len(failures) >= 5:
            break
    elapsed = time.monotonic() - started
    log = server.log_text()[log_start:]
    # " ERROR " in the human log format, "level": "ERROR" in JSON lines.
    if "Traceback" in log or " ERROR " in log or '"ERROR"' in log:
        failures.append("the server log has errors:\n" + log[-3000:])
    assert not failures, (
        f"fuzz seed {SEED} (replay: LOXO_FUZZ_SEED={SEED}), {REQUESTS} requests:\n"
        + "\n".join(failures)
    )
    # the run got past authentication, mostly
    authenticated = sum(c for s, c in statuses.items() if s not in (401, 403))
    assert authenticated > REQUESTS * 0.6, (SEED, statuses)
    # and the fixtures are as they were, but for what a 2xx did
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == bytes(range(256)) * 40
    print(f"fuzz seed {SEED}: {REQUESTS} requests in {elapsed:.1f} s, statuses {statuses}")


def _send(
    server: Any,
    method: str,
    target: str,
    body: bytes,
    headers: dict[str, str],
    payload_hash: str | None,
    rng: random.Random,
) -> Answer:
    """Sign what can be signed; header values botocore cannot put in a
    canonical request (control bytes) go unsigned."""
    sign_these = {k: v for k, v in headers.items() if v.isprintable() and v == v.strip()}
    unsigned = {k: v for k, v in headers.items() if k not in sign_these}
    try:
        return signed(
            server,
            method,
            target,
            body,
            sign_these,
            unsigned_headers=unsigned,
            payload_hash=payload_hash,
        )
    except UnicodeEncodeError:
        pytest.fail(f"the fuzzer built an unsendable request: {method} {target[:100]}")
