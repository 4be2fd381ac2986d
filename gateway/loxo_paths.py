"""loxo's own paths beside the control API: `/_loxo/health` and
`/_loxo/metrics`, and the JSON errors of every other `/_loxo/...` path.

Errors have the control API's shape and codes (gateway/api/errors.py):
an unknown path is 404 `not_found`, a known path with another method 405
`method_not_allowed` (with Allow), so a client of the control API never
meets a bare-text answer under `/_loxo/`.

The metrics endpoint is unauthenticated by default, as the health check is:
its numbers name no bucket, key or access key (those are in the access log
only), Prometheus scrapers cannot sign SigV4, and loxo listens on loopback
unless told otherwise. `--metrics-auth token` requires
`Authorization: Bearer $LOXO_METRICS_TOKEN` instead, which every Prometheus
scrape config can send (docs/operations.md has the reasoning and an example).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from gateway.access import note
from gateway.api.errors import ApiError
from gateway.metrics import Metrics

log = logging.getLogger("loxo")

HEALTH = "/_loxo/health"
METRICS = "/_loxo/metrics"
Handler = Callable[[Request], Awaitable[Response]]


class LoxoPaths:
    def __init__(
        self,
        ping: Callable[[], Awaitable[None]],
        metrics: Metrics,
        metrics_token: str | None = None,
    ) -> None:
        self.ping = ping  # raises when the database does not answer
        self.metrics = metrics
        self.metrics_token = metrics_token  # None: /_loxo/metrics is public
        self.routes: dict[str, tuple[str, Handler]] = {
            HEALTH: ("health", self._health),
            METRICS: ("metrics", self._metrics),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self._handle(request)
        except ApiError as err:
            note(scope, error=err.code)
            response = err.response()
            if err.status == 405:
                response.headers["allow"] = "GET, HEAD"
            elif err.status == 401:
                response.headers["www-authenticate"] = 'Bearer realm="loxo metrics"'
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        path = request.scope["path"]
        found = self.routes.get(path)
        if found is None:
            raise ApiError(
                404,
                "not_found",
                f"no loxo path {path}; there are {HEALTH}, {METRICS} and the control API "
                "under /_loxo/api/v1/",
            )
        name, handler = found
        note(request.scope, action=name)
        if request.method not in ("GET", "HEAD"):
            raise ApiError(405, "method_not_allowed", f"{request.method} is not allowed on {path}")
        return await handler(request)

    async def _health(self, request: Request) -> Response:
        try:
            await self.ping()
        except Exception as exc:
            log.warning("health check: the database does not answer: %s", exc)
            raise ApiError(
                503, "unavailable", f"the database does not answer ({type(exc).__name__})"
            ) from None
        return JSONResponse({"status": "ok"})

    async def _metrics(self, request: Request) -> Response:
        if self.metrics_token is not None:
            self._check_token(request.headers.get("authorization"))
        await self.metrics.refresh()
        body, content_type = self.metrics.render(request.headers.get("accept", ""))
        return Response(body, headers={"content-type": content_type})

    def _check_token(self, authorization: str | None) -> None:
        assert self.metrics_token is not None
        scheme, _, given = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(
                401,
                "unauthenticated",
                "send Authorization: Bearer <token>, the token in the server's "
                "LOXO_METRICS_TOKEN (this server runs with --metrics-auth token)",
            )
        if not hmac.compare_digest(
            given.strip().encode("utf-8", "surrogatepass"),
            self.metrics_token.encode("utf-8", "surrogatepass"),
        ):
            raise ApiError(403, "access_denied", "the metrics token does not match")
