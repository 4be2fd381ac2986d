"""Access records: one per HTTP request (its id, who, which action, the
status, the bytes both ways and the time taken), logged on `loxo.access`
and handed to the metrics.

The gateway wraps every request it routes: it gives the request an id,
times it, counts body bytes as they cross the wire (aws-chunked framing
included) and sees the status. What only a protocol knows (the S3 action or
control-API operation, the authenticated access key, the bucket and key, the
error code) the protocol writes into the request's state (`scope["state"]`,
Starlette's per-request state) under `loxo_<field>` keys; `note()` writes
them, and s3api/app.py writes the same keys itself (it imports nothing of
the gateway). The request id is offered the same way (`loxo_request_id`):
s3api answers with it as x-amz-request-id and RequestId, and every other
response gets it as x-amz-request-id here.

The query string is never logged: a presigned URL carries its signature
there, which would let anyone reading the log replay the request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from s3api.app import NOTE_PREFIX, new_request_id

log = logging.getLogger("loxo.access")

REQUEST_ID_HEADER = b"x-amz-request-id"

# Probes and scrapes answered well are logged at DEBUG: a load balancer's
# health check every few seconds would otherwise drown the requests that matter.
QUIET_ACTIONS = frozenset({("loxo", "health"), ("loxo", "metrics")})


def note(scope: Scope, **fields: str | None) -> None:
    """Tell the access record what only the protocol knows (None: unknown)."""
    state = scope.setdefault("state", {})
    for name, value in fields.items():
        if value is not None:
            state[NOTE_PREFIX + name] = value


def _noted(scope: Scope, name: str) -> str | None:
    value = scope.get("state", {}).get(NOTE_PREFIX + name)
    return str(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class AccessRecord:
    request_id: str
    api: str  # "s3", "control" (the control API) or "loxo" (health, metrics, ...)
    method: str
    path: str
    remote: str | None
    action: str | None  # the S3 action or control-API operation, when known
    user: str | None  # the access key, once the signature checked out
    bucket: str | None
    key: str | None
    status: int
    error: str | None  # the S3 error code or control-API error code
    bytes_in: int
    bytes_out: int
    seconds: float
    complete: bool  # the whole response was handed to the server

    def fields(self) -> dict[str, Any]:
        """The record as log fields (docs/operations.md lists them)."""
        return {
            "event": "request",
            "request_id": self.request_id,
            "api": self.api,
            "method": self.method,
            "path": self.path,
            "action": self.action,
            "user": self.user,
            "bucket": self.bucket,
            "key": self.key,
            "status": self.status,
            "error": self.error,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "duration_ms": round(self.seconds * 1000, 3),
            "remote": self.remote,
            "complete": self.complete,
        }


class Access:
    """Wraps one request: `await access(scope, receive, send, app, api)`."""

    def __init__(
        self,
        observers: list[Callable[[AccessRecord], None]],
        enabled: bool = True,
    ) -> None:
        self.observers = observers
        self.enabled = enabled  # the log lines (--no-access-log); observers always run

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, app: ASGIApp, api: str
    ) -> None:
        request_id = new_request_id()
        note(scope, request_id=request_id)
        started = time.perf_counter()
        bytes_in = bytes_out = status = 0
        complete = False

        async def counting_receive() -> Message:
            nonlocal bytes_in
            message = await receive()
            if message["type"] == "http.request":
                bytes_in += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal bytes_out, status, complete
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", ()))
                if not any(bytes(k).lower() == REQUEST_ID_HEADER for k, _ in headers):
                    headers.append((REQUEST_ID_HEADER, request_id.encode()))
                    message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                bytes_out += len(message.get("body", b""))
                complete = complete or not message.get("more_body", False)
            await send(message)

        try:
            await app(scope, counting_receive, counting_send)
        except BaseException:
            status = status or 500  # what the server answers for us
            raise
        finally:
            client = scope.get("client")
            record = AccessRecord(
                request_id=_noted(scope, "request_id") or request_id,
                api=api,
                method=scope.get("method", ""),
                path=scope.get("path", ""),
                remote=str(client[0]) if client else None,
                action=_noted(scope, "action"),
                user=_noted(scope, "user"),
                bucket=_noted(scope, "bucket"),
                key=_noted(scope, "key"),
                status=status,
                error=_noted(scope, "error"),
                bytes_in=bytes_in,
                bytes_out=bytes_out,
                seconds=time.perf_counter() - started,
                complete=complete,
            )
            self._report(record)

    def _report(self, record: AccessRecord) -> None:
        for observe in self.observers:
            try:
                observe(record)
            except Exception:  # a metrics bug must not fail the request
                logging.getLogger("loxo").exception("recording request metrics failed")
        if not self.enabled:
            return
        quiet = (record.api, record.action) in QUIET_ACTIONS and record.status < 400
        level = logging.DEBUG if quiet else logging.INFO
        if log.isEnabledFor(level):
            log.log(
                level,
                "%s %s %d",
                record.method,
                record.path,
                record.status,
                extra=record.fields(),
            )
