"""Raw, signed requests for the hostile-input tests (test_e2e_hostile_input.py,
test_e2e_fuzz.py): bytes on a socket, so nothing a client library would refuse
to send is out of reach, and a dropped connection is seen as exactly that.

Not a test module (no `test_` prefix); imported by file name from the tests
next to it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import socket
from dataclasses import dataclass
from typing import Any

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"
API = "/_loxo/api/v1"


@dataclass
class Answer:
    """A complete HTTP response; `status` 0 when the connection was dropped
    before a whole response arrived (`error` says how)."""

    status: int
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    body: bytes
    error: str = ""

    @property
    def code(self) -> str | None:
        """The S3 <Code>, or the control API's error code."""
        match = re.search(rb"<Code>([^<]*)</Code>", self.body)
        if match:
            return match.group(1).decode()
        try:
            doc = json.loads(self.body)
        except ValueError:
            return None
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            return str(doc["error"].get("code"))
        return None


class _Signer(S3SigV4Auth):
    """botocore's S3 SigV4 signer with a given x-amz-content-sha256."""

    def __init__(self, credentials: Credentials, payload_hash: str | None) -> None:
        super().__init__(credentials, "s3", REGION)
        self._payload_hash = payload_hash

    def payload(self, request: Any) -> str:
        if self._payload_hash is not None:
            return self._payload_hash
        return str(super().payload(request))


def sign(
    server: Any,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    payload_hash: str | None = None,
) -> dict[str, str]:
    """Headers signing `method target` (path and query, already percent-encoded)
    for `server`; `payload_hash` replaces the body's SHA-256 (UNSIGNED-PAYLOAD,
    STREAMING-*). Header values given here are signed."""
    aws = AWSRequest(
        method=method, url=server.endpoint + target, data=body, headers=dict(headers or {})
    )
    if payload_hash is None and target.startswith(API):
        payload_hash = hashlib.sha256(body).hexdigest()
    creds = Credentials(server.access_key, server.secret_key)
    _Signer(creds, payload_hash).add_auth(aws)
    return dict(aws.headers.items())


def send_raw(server: Any, data: bytes, method: str = "GET", timeout: float = 30) -> Answer:
    """Write `data` (a whole request) on a new connection and read one response."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    try:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock, method=method)
        try:
            response.begin()
            body = response.read()
        except (http.client.HTTPException, OSError) as exc:
            return Answer(0, {}, [], b"", f"{type(exc).__name__}: {exc}")
        raw = [(k, v) for k, v in response.getheaders()]
        return Answer(response.status, {k.lower(): v for k, v in raw}, raw, body)
    finally:
        sock.close()


def request_bytes(
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes = b"",
    extra_header_lines: bytes = b"",
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1".encode()]
    lines.append(b"Host: " + headers.pop("host").encode())
    for name, value in headers.items():
        lines.append(f"{name}: {value}".encode("latin-1"))
    framed = any(n.lower() in ("content-length", "transfer-encoding") for n in headers)
    if (body or method in ("PUT", "POST")) and not framed:
        lines.append(f"Content-Length: {len(body)}".encode())
    head = b"\r\n".join(lines) + b"\r\n" + extra_header_lines + b"Connection: close\r\n\r\n"
    return head + body


def signed(
    server: Any,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    unsigned_headers: dict[str, str] | None = None,
    payload_hash: str | None = None,
    extra_header_lines: bytes = b"",
) -> Answer:
    """A signed request sent raw: `headers` are signed, `unsigned_headers` and
    `extra_header_lines` (raw bytes, each line ending in CRLF) are sent as they are."""
    all_headers = sign(server, method, target, body, headers, payload_hash)
    all_headers["host"] = f"127.0.0.1:{server.port}"
    all_headers.update(unsigned_headers or {})
    data = request_bytes(method, target, all_headers, body, extra_header_lines)
    return send_raw(server, data, method)
