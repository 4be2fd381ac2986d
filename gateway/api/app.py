"""The control API as an ASGI app under /_loxo/api/v1: route, authenticate,
run the operation, answer JSON (errors included)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.access import note
from gateway.api import openapi
from gateway.api.auth import MAX_BODY, authenticate
from gateway.api.errors import ApiError, bad_request, from_domain
from gateway.api.operations import OPERATIONS, Call, Operation, json_response
from s3api.inputs import unstorable
from versioning.control import Control
from versioning.errors import VersioningError

log = logging.getLogger("loxo.api")
PREFIX = openapi.PREFIX


def _pattern(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")


#: How deep a request body may nest: every operation takes a flat object.
MAX_JSON_DEPTH = 16


def _json_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object ({} when empty); 400 when it is not
    one, or nests deeper than MAX_JSON_DEPTH (the decoder recurses: a body of
    100,000 `[` must not be a RecursionError and a 500)."""
    try:
        data = json.loads(body) if body.strip() else {}
    except RecursionError:
        raise bad_request(f"the request body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        raise bad_request("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_request("the request body must be a JSON object")
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise bad_request(f"the request body nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, dict):
            for name, item in value.items():
                _storable(f"the body's field name {name[:100]!r}", name)
                if isinstance(item, str):
                    _storable(f"the body's field {name[:100]!r}", item)
                pending.append((item, depth + 1))
        elif isinstance(value, list):
            pending.extend((v, depth + 1) for v in value)
            for item in value:
                if isinstance(item, str):
                    _storable("a string in the body", item)
    return data


def _storable(what: str, text: str) -> None:
    """400 for text the database cannot store: NUL, lone surrogates (JSON's
    "\\ud800" decodes to one); names, refs, paths and cursors all reach it."""
    problem = unstorable(text)
    if problem is not None:
        raise bad_request(f"{what} {problem}")


class ControlApi:
    def __init__(self, control: Control, secrets: Callable[[str], str | None]) -> None:
        self.control = control
        self.secrets = secrets
        self.routes = [(_pattern(o.path), o) for o in OPERATIONS]
        self._openapi = json.dumps(openapi.document()).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        err: ApiError | None = None
        try:
            response = await self._handle(request)
        except ClientDisconnect:
            # The client hung up mid-body: nobody to answer, nothing to fix.
            log.info("client disconnected during %s %s", scope["method"], scope["path"])
            return
        except ApiError as exc:
            err = exc
        except VersioningError as exc:
            err = from_domain(exc)
        except Exception:
            log.exception("internal error on %s %s", scope["method"], scope["path"])
            err = from_domain(VersioningError())
        if err is not None:
            note(scope, error=err.code)
            response = err.response()
        await response(scope, receive, send)

    def _match(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        allowed = False
        for pattern, operation in self.routes:
            m = pattern.match(path)
            if m is None:
                continue
            if operation.method == method:
                return operation, {k: unquote(v) for k, v in m.groupdict().items()}
            allowed = True
        if allowed:
            raise ApiError(405, "method_not_allowed", f"{method} is not allowed on {path}")
        raise ApiError(404, "not_found", f"no API path {PREFIX}{path}")

    async def _handle(self, request: Request) -> Response:
        path = request.scope["path"][len(PREFIX) :] or "/"
        if path == "/openapi.json" and request.method == "GET":
            note(request.scope, action="openapi")
            return Response(self._openapi, media_type="application/json")
        operation, params = self._match(request.method, path)
        # The repo a path names stands in the access log where S3's bucket does.
        note(request.scope, action=operation.name, bucket=params.get("repo"))
        body = b""
        async for piece in request.stream():
            body += piece
            if len(body) > MAX_BODY:
                raise bad_request(f"request bodies are limited to {MAX_BODY} bytes")
        raw_path = (request.scope.get("raw_path") or b"/").decode("utf-8", "surrogateescape")
        query_string = request.scope.get("query_string", b"").decode("latin-1")
        pairs = parse_qsl(query_string, keep_blank_values=True)
        headers = {k.lower(): v for k, v in request.headers.items()}
        access_key = authenticate(self.secrets, request.method, raw_path, pairs, headers, body)
        note(request.scope, user=access_key)
        for name, value in params.items():
            _storable(f"the path parameter {name}", value)
        for name, value in pairs:
            _storable(f"the query parameter {name[:100]!r}", name + value)
        data = _json_object(body)
        call = Call(params, dict(pairs), data, access_key, request.is_disconnected)
        result = await operation.handler(self.control, call)
        return json_response(result, operation.status)
