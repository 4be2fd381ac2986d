"""The S3 endpoint as an ASGI app: parse, authenticate, route, dispatch, answer.

Every failure becomes an S3 error document with Code, Message, Resource and
RequestId; nothing escapes as a bare 500 page.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.signing import sigv2, sigv4
from gateway.signing.errors import SigningError
from s3api import routing, xml
from s3api.errors import (
    AccessDenied,
    InvalidAccessKeyId,
    InvalidArgument,
    MethodNotAllowed,
    NotImplementedErr,
    S3Error,
    from_domain,
    from_signing,
)
from s3api.inputs import decimal, refuse_unstorable
from s3api.operations import ACTIONS
from s3api.operations.common import Context, bucket_of
from s3api.request import S3Request
from versioning.errors import VersioningError

log = logging.getLogger("loxo.s3")

# access key -> secret key, or None when the key is unknown
SecretLookup = Callable[[str], str | None]


def bucket_from_host(host: str | None, domains: tuple[str, ...]) -> str | None:
    """The bucket a virtual-host-style Host header names, or None for path style.

    `host` is a Host header value (`name[:port]`); `domains` are the configured
    lower-case domains. `<bucket>.<domain>` names `<bucket>` (which may itself
    hold dots, as `repo.branch` does); the longest matching domain wins. The
    bare domain, an IP address or any other host means path-style addressing.
    """
    if not host or not domains:
        return None
    name = host.strip().lower()
    if name.startswith("["):
        return None  # an IPv6 literal is never a virtual host
    name = name.rpartition(":")[0] if ":" in name else name
    name = name.rstrip(".")
    matches = [d for d in domains if name.endswith("." + d) and len(name) > len(d) + 1]
    if not matches:
        return None
    return name[: -len(max(matches, key=len)) - 1]


def _split_path(raw_path: bytes, host_bucket: str | None = None) -> tuple[str | None, str | None]:
    """(bucket, key) of a request path; with `host_bucket` (virtual-host style)
    the bucket came from the Host header and the whole path is the key."""
    try:
        text = raw_path.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument("The request path is not valid UTF-8") from None
    if not text.startswith("/"):
        raise InvalidArgument("The request path must start with '/'")
    if host_bucket is not None:
        bucket, key = host_bucket, text[1:]
    else:
        bucket, _, key = text[1:].partition("/")
    try:
        bucket_name = unquote(bucket, errors="strict") or None
        key_name = unquote(key, errors="strict") or None
    except UnicodeDecodeError:
        raise InvalidArgument("The key is not valid UTF-8") from None
    return bucket_name, key_name


def _query_pairs(query_string: bytes) -> list[tuple[str, str]]:
    pairs = []
    for part in query_string.decode("latin-1").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        try:
            pairs.append((unquote(name, errors="strict"), unquote(value, errors="strict")))
        except UnicodeDecodeError:
            raise InvalidArgument("The query string is not valid UTF-8") from None
    return pairs


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        out[name] = f"{out[name]},{value}" if name in out else value
    return out


# What the S3 layer tells whoever serves it about a request, in the request's
# state (scope["state"], Starlette's per-request state): loxo_action,
# loxo_bucket, loxo_key, loxo_user (the verified access key) and loxo_error
# (the S3 error code). The gateway's access log and metrics read them
# (gateway/access.py); loxo_request_id, when the server set it, is the id
# answered as x-amz-request-id.
NOTE_PREFIX = "loxo_"


def _note(state: MutableMapping[str, Any], **fields: str | None) -> None:
    for name, value in fields.items():
        if value is not None:
            state[NOTE_PREFIX + name] = value


def new_request_id() -> str:
    """A request id for x-amz-request-id and the RequestId of error documents."""
    return os.urandom(8).hex().upper()


def error_response(err: S3Error, resource: str, request_id: str, method: str) -> Response:
    headers = {"x-amz-request-id": request_id, "x-amz-id-2": request_id, **err.headers}
    if err.status == 304 or method == "HEAD":
        return Response(status_code=err.status, headers=headers)
    children: list[xml.Element] = [("Code", err.code), ("Message", err.message)]
    children.extend(err.extra.items())
    children += [("Resource", resource), ("RequestId", request_id), ("HostId", request_id)]
    body = xml.document("Error", children, namespace=False)
    return Response(body, status_code=err.status, media_type="application/xml", headers=headers)


DRAIN_LIMIT = 1 << 20
DRAIN_SECONDS = 5.0


async def _drain_body(req: S3Request | None, scope: Scope, receive: Receive) -> bool:
    """Read and drop what is left of a rejected request's body, so the
    connection stays usable. False when that is not worth it (over
    DRAIN_LIMIT bytes or DRAIN_SECONDS) and the connection must be closed."""
    if req is None:
        return scope["method"] in ("GET", "HEAD", "DELETE")
    if req.http._stream_consumed:
        return True
    headers = req.headers_lower
    length = headers.get("content-length")
    if length is None and "chunked" not in headers.get("transfer-encoding", ""):
        return True  # no body at all
    size = decimal(length) if length is not None else None
    if length is not None and (size is None or size > DRAIN_LIMIT):
        return False
    if length == "0":
        return True
    if headers.get("expect", "").lower() == "100-continue":
        return False  # the client has not sent the body; closing is the cheap way out

    async def drain() -> bool:
        seen = 0
        async for piece in req.http.stream():
            seen += len(piece)
            if seen > DRAIN_LIMIT:
                return False
        return True

    try:
        return await asyncio.wait_for(drain(), DRAIN_SECONDS)
    except Exception:
        return False


class S3App:
    def __init__(self, ctx: Context, secrets: SecretLookup, domains: tuple[str, ...] = ()) -> None:
        self.ctx = ctx
        self.secrets = secrets
        self.domains = domains  # virtual-host-style addressing under these domains

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        # The server's request id when it gave one (its access log names the
        # request by it), else our own.
        state = scope.setdefault("state", {})
        request_id = str(state.get(NOTE_PREFIX + "request_id") or new_request_id())
        method = scope["method"]
        resource = scope.get("path", "/")
        req: S3Request | None = None
        err: S3Error | None = None
        try:
            req = self._parse(scope, receive, request_id)
            resource = req.resource
            action = self._action(req)
            _note(state, action=action, bucket=req.bucket_name, key=req.key)
            response = await self._handle(req, action)
        except S3Error as exc:
            err = exc
        except SigningError as exc:
            err = from_signing(exc)
        except VersioningError as exc:
            err = from_domain(exc)
        except Exception:
            log.exception("internal error on %s %s", method, resource)
            err = from_domain(VersioningError())
        if err is not None:
            response = error_response(err, resource, request_id, method)
        _note(
            state,
            user=req.access_key if req is not None else None,
            error=err.code if err is not None else None,
        )
        if response.status_code >= 300 and not await _drain_body(req, scope, receive):
            # Unread body bytes would be parsed as the next request on this
            # connection, so give the connection up instead.
            response.headers["connection"] = "close"
        response.headers.setdefault("x-amz-request-id", request_id)
        await response(scope, receive, send)

    def _parse(self, scope: Scope, receive: Receive, request_id: str) -> S3Request:
        headers = _headers(scope)
        host_bucket = bucket_from_host(headers.get("host"), self.domains)
        bucket, key = _split_path(scope.get("raw_path") or scope["path"].encode(), host_bucket)
        pairs = _query_pairs(scope.get("query_string", b""))
        query: dict[str, str] = {}
        for name, value in pairs:
            query.setdefault(name, value)
        return S3Request(
            Request(scope, receive),
            scope["method"],
            bucket,
            key,
            query,
            request_id,
            headers_lower=headers,
            query_pairs=pairs,
        )

    def _authenticate(self, req: S3Request) -> None:
        """SigV4 (header or presigned URL), or SigV2 when the request carries that."""
        scope = req.http.scope
        raw_path = (scope.get("raw_path") or b"/").decode("utf-8", "surrogateescape")
        pairs = req.query_pairs
        headers = req.headers_lower
        if sigv2.carries(pairs, headers):
            v2 = sigv2.parse(pairs, headers)
            secret = self.secrets(v2.access_key)
            if secret is None:
                raise InvalidAccessKeyId()
            # SigV2 signs /bucket/key whatever the addressing style.
            host_bucket = bucket_from_host(headers.get("host"), self.domains)
            raw_query = scope.get("query_string", b"").decode("latin-1")
            sigv2.verify(v2, secret, req.method, raw_path, raw_query, headers, bucket=host_bucket)
            req.access_key = v2.access_key
            return
        signed = sigv4.parse(req.method, raw_path, pairs, headers)
        if signed is None:
            raise AccessDenied("Anonymous access is not allowed; sign requests with SigV4")
        secret = self.secrets(signed.credential.access_key)
        if secret is None:
            raise InvalidAccessKeyId()
        sigv4.verify(signed, secret, req.method, raw_path, pairs, headers)
        req.access_key = signed.credential.access_key
        # aws-chunked bodies (STREAMING-AWS4-HMAC-SHA256-*) chain their chunk
        # signatures from this one: S3Request.pieces() checks them.
        req.signed = signed
        req.signing_key = sigv4.signing_key(
            secret, signed.credential.date, signed.credential.region, signed.credential.service
        )

    @staticmethod
    def _action(req: S3Request) -> str:
        """The request's S3 action (or NotImplemented, MethodNotAllowed): a
        pure function of the request, known before authentication, so that
        refused requests are counted under the action they asked for."""
        return routing.header_action(
            routing.route(req.method, req.bucket_name, req.key, req.query.keys()),
            req.headers_lower,
        )

    async def _handle(self, req: S3Request, action: str) -> Response:
        self._authenticate(req)
        headers = req.headers_lower
        if action == "NotImplemented":
            raise NotImplementedErr(
                "This sub-resource is not implemented by loxo: "
                + ", ".join(sorted(q for q in req.query if q in routing.UNSUPPORTED_SUBRESOURCES))
            )
        if action == "MethodNotAllowed":
            raise MethodNotAllowed()
        if req.bucket_name is not None:
            bucket_of(req)  # InvalidBucketName before anything else
        refuse_unstorable(req.key, req.query_pairs)
        unsupported = routing.unsupported_header(action, headers)
        if unsupported is not None:
            name, value = unsupported
            raise NotImplementedErr(
                f"loxo does not implement the {name} header with the value {value.strip()!r} "
                f"on {action}",
                Header=name,
            )
        handler = ACTIONS[action]
        return await handler(self.ctx, req)
