"""The loxo ASGI application: wires storage, metadata and the protocol apps.

`/_loxo/...` is loxo's own control surface (health, metrics, and the control
API under /_loxo/api/v1); the underscore keeps it out of the bucket namespace.
Everything else is S3, including every path of a virtual-host-style request
(Host `<bucket>.<domain>`), where the path is a key and `_loxo/...` an
ordinary one. Every request passes through the access recorder (request id,
access log, request metrics: gateway/access.py) on its way to one of them.

Background tasks abort multipart uploads idle for longer than
`--upload-expiry-hours` and open commits idle for longer than their limit, and
collect garbage every `--gc-interval-hours`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import importlib.metadata
import logging
import time
from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.access import Access
from gateway.api.app import PREFIX as API_PREFIX
from gateway.api.app import ControlApi
from gateway.config import ServeConfig
from gateway.credentials import Credentials
from gateway.database import where
from gateway.loxo_paths import LoxoPaths
from gateway.memory import IdleTrim
from gateway.metered_store import MeteredStore
from gateway.metrics import Metrics
from s3api.app import S3App, bucket_from_host
from s3api.operations.common import Context
from versioning import gc
from versioning.catalog import GcRunning
from versioning.chunker import StreamChunker
from versioning.chunkstore import open_store
from versioning.chunkstore.base import ChunkStore
from versioning.control import Control
from versioning.db import Database
from versioning.pipelines.jobs import Jobs
from versioning.repository import Versioning
from versioning.services import build

log = logging.getLogger("loxo")
CONTROL_PREFIX = "/_loxo/"
# How often the expiry task looks for idle uploads, at most (and at least).
EXPIRY_MAX_INTERVAL = 600.0
# How long a completed multipart upload is remembered, so that a retried
# CompleteMultipartUpload gets the same answer (seconds).
COMPLETION_MEMORY = 24 * 3600.0
EXPIRY_MIN_INTERVAL = 1.0
OPEN_COMMIT_CHECK_INTERVAL = 2.0


def loxo_version() -> str:
    """The installed distribution's version ("" when run from a bare checkout)."""
    try:
        return importlib.metadata.version("loxo")
    except importlib.metadata.PackageNotFoundError:
        return ""


def open_chunk_store(cfg: ServeConfig) -> ChunkStore:
    """The chunk store the configuration names (for serve, gc and fsck alike)."""
    return open_store(
        cfg.store_url,
        endpoint=cfg.store_endpoint,
        cache_dir=cfg.cache_dir,
        cache_bytes=cfg.cache_bytes,
    )


class LoxoApp:
    def __init__(self, cfg: ServeConfig, creds: Credentials, dsn: str) -> None:
        self.cfg = cfg
        self.creds = creds
        self.dsn = dsn
        self.db: Database | None = None
        self.store: ChunkStore | None = None
        self.s3: S3App | None = None
        self.api: ControlApi | None = None
        self.metrics = Metrics(loxo_version(), cfg.workers)
        self.access = Access([self.metrics.request], enabled=cfg.access_log)
        self.paths = LoxoPaths(self._ping, self.metrics, cfg.metrics_token)
        self._expiry: asyncio.Task[None] | None = None
        self._open_expiry: asyncio.Task[None] | None = None
        self._gc: asyncio.Task[None] | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._trim: asyncio.Task[None] | None = None
        self.idle_trim = IdleTrim()
        self.jobs: Jobs | None = None

    def _secret_for(self, access_key: str) -> str | None:
        # Bytes: compare_digest refuses str with non-ASCII characters.
        given = access_key.encode("utf-8", "surrogatepass")
        if hmac.compare_digest(given, self.creds.access_key.encode("utf-8", "surrogatepass")):
            return self.creds.secret_key
        return None

    async def _ping(self) -> None:
        if self.db is None:
            raise RuntimeError("not started")
        await self.db.ping()

    async def startup(self) -> None:
        # Hashing, chunking and fsyncs run in worker threads (they release the
        # GIL); the default pool of cpu+4 threads would queue concurrent uploads.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=32, thread_name_prefix="loxo-io")
        )
        self.store = MeteredStore(open_chunk_store(self.cfg), self.metrics)
        self.db = await Database.connect(self.dsn)
        services = build(
            self.db,
            self.store,
            inline_max=self.cfg.inline_max,
            chunker_factory=functools.partial(
                StreamChunker, self.cfg.chunk_avg, self.cfg.chunk_min, self.cfg.chunk_max
            ),
            ingest_memory=self.cfg.ingest_memory,
            open_idle_seconds=self.cfg.open_commit_idle_minutes * 60,
            trash_seconds=self.cfg.trash_days * 86400,
            lease_seconds=self.cfg.lease_seconds,
        )
        versioning, control = services.versioning, services.control
        self.jobs = control.jobs
        self._pipelines = control.pipelines
        self.metrics.committer = versioning.committer
        self.metrics.pipeline_stats = services.pipeline_stats
        self.s3 = S3App(Context(versioning, self.cfg.region), self._secret_for, self.cfg.domains)
        self.api = ControlApi(control, self._secret_for)
        self._expiry = asyncio.create_task(self._expire_uploads(versioning))
        self._open_expiry = asyncio.create_task(self._expire_open_commits(control))
        self._scheduler = asyncio.create_task(services.scheduler.run())
        self._trim = asyncio.create_task(self.idle_trim.run())
        if self.cfg.gc_interval_hours > 0:
            self._gc = asyncio.create_task(self._collect_garbage())
        log.info(
            "started: chunks in %s, metadata in PostgreSQL at %s",
            self.cfg.store_url,
            where(self.dsn),
            extra={"event": "startup", "version": loxo_version(), "store": self.cfg.store_url},
        )

    async def _collect_garbage(self) -> None:
        """A gc pass every gc_interval_hours (the first one interval after
        start), by the leader of the gateways sharing the database (the others
        skip it: docs/design/multi-gateway.md); gc's own lock keeps two
        passes, from here or `loxo gc`, from ever overlapping."""
        assert self.db is not None and self.store is not None
        catalog = self.db.catalog()
        leader = self.db.leadership()
        gc_log = logging.getLogger("loxo.gc")
        while True:
            await asyncio.sleep(self.cfg.gc_interval_hours * 3600)
            if not await leader.is_leader():
                continue
            started = time.monotonic()
            try:
                report = await gc.collect(catalog, self.store, self.cfg.gc_grace_minutes * 60)
            except GcRunning:
                gc_log.info(
                    "garbage collection skipped: another one is running",
                    extra={"event": "gc_skipped"},
                )
                continue
            except Exception:
                self.metrics.gc_run(time.monotonic() - started, None)
                gc_log.exception(
                    "garbage collection failed; will retry next interval",
                    extra={"event": "gc_failed"},
                )
                continue
            freed = {
                "commits": report.commits,
                "nodes": report.nodes,
                "contents": report.contents,
                "chunks": report.chunks,
            }
            self.metrics.gc_run(report.seconds, freed, report.chunk_bytes)
            fields = {"event": "gc", **freed, "freed_bytes": report.chunk_bytes}
            gc_log.info("%s", report.summary(), extra={**fields, "seconds": report.seconds})

    async def _expire_uploads(self, versioning: Versioning) -> None:
        """Abort uploads idle for upload_expiry_hours (0: never), checking every
        tenth of that (bounded to [EXPIRY_MIN_INTERVAL, EXPIRY_MAX_INTERVAL]
        seconds), and forget completed uploads after COMPLETION_MEMORY. The
        parts' chunks are left for garbage collection."""
        max_idle = self.cfg.upload_expiry_hours * 3600
        interval = EXPIRY_MAX_INTERVAL
        if max_idle > 0:
            interval = min(max(max_idle / 10, EXPIRY_MIN_INTERVAL), EXPIRY_MAX_INTERVAL)
        while True:
            try:
                await versioning.uploads.forget_completions(int(COMPLETION_MEMORY * 1_000_000))
                expired = (
                    await versioning.uploads.expire(int(max_idle * 1_000_000))
                    if max_idle > 0
                    else []
                )
                if expired:
                    log.info(
                        "aborted %d multipart uploads idle for over %g hours",
                        len(expired),
                        self.cfg.upload_expiry_hours,
                        extra={"event": "uploads_expired", "count": len(expired)},
                    )
            except Exception:
                log.exception("expiring multipart uploads failed; will retry")
            await asyncio.sleep(interval)

    async def _expire_open_commits(self, control: Control) -> None:
        """Abort open commits idle for longer than their own limit, which each
        sets at start: so look often (one small query)."""
        while True:
            try:
                for record in await control.open_commits.expire():
                    log.info(
                        "aborted open commit %s of %s@%s: idle for over %g s",
                        record.id.hex(),
                        record.repo,
                        record.branch,
                        record.idle_us / 1e6,
                        extra={
                            "event": "open_commit_expired",
                            "repo": record.repo,
                            "branch": record.branch,
                        },
                    )
            except Exception:
                log.exception("expiring open commits failed; will retry")
            await asyncio.sleep(OPEN_COMMIT_CHECK_INTERVAL)

    def closing(self) -> None:
        """The server stops accepting: answer long-polling workers now, so the
        graceful shutdown does not wait out their polls."""
        if self.jobs is not None:
            self.jobs.close()

    async def pipelines_exist(self) -> bool:
        """Whether any pipeline exists: local workers run only then."""
        return await self._pipelines.any()

    async def shutdown(self) -> None:
        for task in (self._expiry, self._open_expiry, self._gc, self._scheduler, self._trim):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.db is not None:
            await self.db.close()
        if self.store is not None:
            await self.store.close()
        log.info("stopped", extra={"event": "stopped"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            api, app = self._route(scope)
            if api != "s3":
                await self.access(scope, receive, send, app, api)
                return
            self.idle_trim.enter()
            try:
                await self.access(scope, receive, send, app, api)
            finally:
                self.idle_trim.exit()

    def _route(self, scope: Scope) -> tuple[str, ASGIApp]:
        """Which API serves a request (its name in access records), and its app."""
        if self._is_control(scope):
            if scope["path"].startswith(API_PREFIX) and self.api is not None:
                return "control", self.api
            return "loxo", self.paths
        assert self.s3 is not None
        return "s3", self.s3

    def _is_control(self, scope: Scope) -> bool:
        if not scope["path"].startswith(CONTROL_PREFIX):
            return False
        if not self.cfg.domains:
            return True
        host = next((v for k, v in scope["headers"] if k.lower() == b"host"), b"")
        # Under virtual-host addressing the path is a key: S3's, not ours.
        return bucket_from_host(host.decode("latin-1"), self.cfg.domains) is None

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
