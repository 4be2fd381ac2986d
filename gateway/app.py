"""The loxo ASGI application: wires storage, metadata and the protocol apps.

`/_loxo/...` is loxo's own control surface (health now, the control API
later); the underscore keeps it out of the bucket namespace. Everything else
is S3.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.config import ServeConfig
from gateway.credentials import Credentials
from s3api.app import S3App
from s3api.operations.common import Context
from versioning.chunkstore import open_store
from versioning.chunkstore.base import ChunkStore
from versioning.metadata import Metadata
from versioning.repository import Versioning

log = logging.getLogger("loxo")
CONTROL_PREFIX = "/_loxo/"


class LoxoApp:
    def __init__(self, cfg: ServeConfig, creds: Credentials, dsn: str) -> None:
        self.cfg = cfg
        self.creds = creds
        self.dsn = dsn
        self.meta: Metadata | None = None
        self.store: ChunkStore | None = None
        self.s3: S3App | None = None
        self.control = Starlette(routes=[Route("/_loxo/health", self._health)])

    def _secret_for(self, access_key: str) -> str | None:
        if hmac.compare_digest(access_key, self.creds.access_key):
            return self.creds.secret_key
        return None

    async def _health(self, request: Request) -> JSONResponse:
        assert self.meta is not None
        await self.meta.pool.fetchval("SELECT 1")
        return JSONResponse({"status": "ok"})

    async def startup(self) -> None:
        # Hashing, chunking and fsyncs run in worker threads (they release the
        # GIL); the default pool of cpu+4 threads would queue concurrent uploads.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=32, thread_name_prefix="loxo-io")
        )
        self.store = open_store(self.cfg.store_url)
        self.meta = await Metadata.connect(self.dsn)
        versioning = Versioning(self.meta, self.store)
        self.s3 = S3App(Context(versioning, self.cfg.region), self._secret_for, self.cfg.domains)

    async def shutdown(self) -> None:
        if self.meta is not None:
            await self.meta.close()
        if self.store is not None:
            await self.store.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and scope["path"].startswith(CONTROL_PREFIX):
            await self.control(scope, receive, send)
        elif scope["type"] == "http":
            assert self.s3 is not None
            await self.s3(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message: MutableMapping[str, Any] = await receive()
        assert message["type"] == "lifespan.startup"
        try:
            await self.startup()
        except Exception as exc:
            log.exception("startup failed")
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        try:
            await self.shutdown()
        finally:
            await send({"type": "lifespan.shutdown.complete"})
