"""S3 error documents for requests the HTTP parser refuses before the app runs.

uvicorn answers a request it cannot parse (a non-numeric or negative
Content-Length, both Content-Length and Transfer-Encoding, invalid bytes in a
header) with a text/plain 400 of its own. These protocol classes answer with an
S3 error document instead (Code, Message, Resource, RequestId, as every other
error), then close the connection as uvicorn does: after a framing error the
rest of the stream cannot be trusted.

The only uvicorn hook used is `send_400_response(msg)`, which both the
httptools and the h11 protocol call from inside their `except` clause for the
parser's error; the error's text picks the S3 code. Should a later uvicorn
stop calling the hook, its own 400 is still sent.
"""

from __future__ import annotations

import asyncio
import sys
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

from uvicorn.protocols.http.h11_impl import H11Protocol

from s3api.app import error_response, new_request_id
from s3api.errors import BadRequest, InvalidArgument, S3Error


def parser_error(problem: str) -> S3Error:
    """The S3 error for an HTTP parser's complaint (e.g. httptools' "Invalid
    character in Content-Length", h11's "bad Content-Length")."""
    lowered = problem.lower()
    if "transfer-encoding" in lowered:
        return BadRequest(f"An error occurred when parsing the HTTP request: {problem}.")
    if "content-length" in lowered:
        return InvalidArgument(
            f"The Content-Length header must be one non-negative decimal number ({problem}).",
            ArgumentName="Content-Length",
        )
    return BadRequest(f"An error occurred when parsing the HTTP request: {problem}.")


def _problem(fallback: str) -> str:
    """The text of the parser error being handled, or `fallback`; cut short,
    as h11 quotes the offending line (which may be long)."""
    exc = sys.exc_info()[1]
    text = str(exc).strip() if exc is not None else ""
    text = text.rstrip(".") or fallback.rstrip(".")
    return text if len(text) <= 200 else text[:200] + "..."


def _resource(url: Any) -> str:
    """The decoded path of a partly parsed request URL; "/" when unknown."""
    if not isinstance(url, bytes) or not url.startswith(b"/"):
        return "/"
    path = url.partition(b"?")[0]
    return unquote_to_bytes(path).decode("utf-8", "replace")


def rejection(err: S3Error, resource: str, default_headers: Any = ()) -> bytes:
    """A complete HTTP/1.1 response carrying `err` as an S3 error document,
    announcing that the connection closes."""
    request_id = new_request_id()
    response = error_response(err, resource, request_id, "GET")
    lines = [f"HTTP/1.1 {err.status} {HTTPStatus(err.status).phrase}\r\n".encode("ascii")]
    for name, value in [*default_headers, *response.raw_headers, (b"connection", b"close")]:
        lines.append(bytes(name) + b": " + bytes(value) + b"\r\n")
    return b"".join([*lines, b"\r\n", bytes(response.body)])


def send_rejection(protocol: Any, msg: str) -> None:
    """Write the S3 error for the parser error being handled, then close."""
    state = getattr(protocol, "server_state", None)
    default_headers = getattr(state, "default_headers", ())
    err = parser_error(_problem(msg))
    transport: asyncio.Transport = protocol.transport
    transport.write(rejection(err, _resource(getattr(protocol, "url", None)), default_headers))
    transport.close()


class S3H11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        send_rejection(self, msg)


HttpProtocol: type[asyncio.Protocol] = S3H11Protocol
try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - uvicorn without httptools
    pass
else:

    class S3HttpToolsProtocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            send_rejection(self, msg)

    HttpProtocol = S3HttpToolsProtocol
