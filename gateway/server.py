"""Running loxo: open the database (embedded or external), then serve with uvicorn.

uvicorn handles SIGINT and SIGTERM: it stops accepting, lets in-flight requests
finish, then runs the app's shutdown, after which the embedded PostgreSQL is
stopped. Nothing is acknowledged before it is durable, so even a kill -9 loses
no acknowledged write.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from gateway import credentials, embedded_pg, memory
from gateway.app import LoxoApp
from gateway.client import logs
from gateway.config import ServeConfig
from gateway.database import prepare_database
from gateway.http_errors import HttpProtocol

log = logging.getLogger("loxo")

# How often a server with local workers checks whether any pipeline exists.
PIPELINES_POLL = 1.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises the captured signal after its graceful shutdown,
        # which would kill us before the embedded PostgreSQL is stopped. A
        # requested shutdown that completed is a success: exit normally.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {
            sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def _shutdown_connections(self, sockets: Any = None) -> None:
        # close() on an idle TLS connection waits (up to 30 s) for the client's
        # close_notify, which a client keeping the connection in its pool never
        # sends. An idle connection with nothing left to send loses nothing by
        # being aborted, so do that first; busy ones finish gracefully.
        for connection in list(self.server_state.connections):
            cycle = getattr(connection, "cycle", None)
            transport = getattr(connection, "transport", None)
            idle = cycle is None or cycle.response_complete
            if idle and transport is not None and transport.get_write_buffer_size() == 0:
                transport.abort()
        await super().shutdown(sockets)

    # Set by serve(): the local pipeline workers to start once listening.
    local_workers: Callable[[str], Any] | None = None
    _workers: Any = None
    _tracking: asyncio.Task[None] | None = None

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started:
            scheme = "https" if self.config.is_ssl else "http"
            endpoint = f"{scheme}://{self.config.host}:{self.config.port}"
            print(f"loxo listening on {endpoint}", flush=True)
            listening = {"event": "listening", "endpoint": endpoint}
            log.info("listening on %s", endpoint, extra=listening)
            if self.local_workers is not None:
                # Workers reach the server over HTTP only, as on another machine:
                # they can start only once it listens.
                self._workers = self.local_workers(endpoint)
                await asyncio.to_thread(self._workers.start)
                if hasattr(self._workers, "want"):
                    self._tracking = asyncio.create_task(self._track_pipelines())

    async def _track_pipelines(self) -> None:
        """Local workers run while any pipeline exists (this gateway's or
        another's: the database says), checked every PIPELINES_POLL s."""
        exist = getattr(self.config.app, "pipelines_exist", None)
        while exist is not None:
            try:
                self._workers.want(await exist())
            except Exception:  # the database is away: keep the workers as they are
                log.debug("could not tell whether pipelines exist", exc_info=True)
            await asyncio.sleep(PIPELINES_POLL)

    async def shutdown(self, sockets: Any = None) -> None:
        log.info("stopping: finishing requests in flight", extra={"event": "stopping"})
        closing = getattr(self.config.app, "closing", None)
        if closing is not None:
            closing()
        if self._tracking is not None:
            self._tracking.cancel()
        if self._workers is not None:
            await asyncio.to_thread(self._workers.stop)
        await self._shutdown_connections(sockets)


def _local_workers(cfg: ServeConfig, creds: credentials.Credentials, endpoint: str) -> Any:
    from workers.local import LocalWorkers  # only a serving process needs it

    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::", "") else cfg.host
    url = endpoint.replace(f"//{cfg.host}:", f"//{host}:", 1)
    ca = str(cfg.tls_cert) if cfg.tls_cert is not None else None
    return LocalWorkers(
        cfg.workers,
        url,
        creds.access_key,
        creds.secret_key,
        cfg.region,
        scratch_root=cfg.data_dir / "workers",
        ca_bundle=ca,
        parallel=cfg.worker_parallel,
        # Resolved here: auto would look at the workers' own stderr, which is ours.
        log_format=logs.resolve_format(cfg.log_format, sys.stderr),
        log_level=cfg.log_level,
        on_demand=True,
    )


def _kubernetes_executor(cfg: ServeConfig, creds: credentials.Credentials, endpoint: str) -> Any:
    """The Kubernetes executor, reaching this server over HTTP (loopback)
    like the local workers; pods reach it at cfg.kubernetes.endpoint."""
    from gateway.client import Client
    from gateway.executors.kubernetes import KubernetesExecutor

    assert cfg.kubernetes is not None
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::", "") else cfg.host
    url = endpoint.replace(f"//{cfg.host}:", f"//{host}:", 1)
    verify: bool | str = str(cfg.tls_cert) if cfg.tls_cert is not None else True
    return KubernetesExecutor(
        cfg.kubernetes,
        lambda: Client(url, creds.access_key, creds.secret_key, region=cfg.region, verify=verify),
    )


def open_database(cfg: ServeConfig, create: bool = True) -> tuple[str, Any] | int:
    """The configured database, migrated and ready: (dsn, the embedded server
    handle or None; call its cleanup() when done), or an exit code after
    saying on stderr why it cannot be used. With `create` False a missing
    external database is an error, not created (gc and fsck: a misspelt name
    must not become an empty database that checks as fine)."""
    embedded = None
    dsn = cfg.database_url
    if dsn is None:
        try:
            dsn, embedded = embedded_pg.start(cfg.data_dir)
        except embedded_pg.EmbeddedUnavailable as exc:
            print(f"loxo: {exc}", file=sys.stderr)
            return 2
    problem = prepare_database(dsn, create)
    if problem is not None:
        print(f"loxo: {problem}", file=sys.stderr)
        if embedded is not None:
            embedded.cleanup()
        return 2
    return dsn, embedded


def serve(cfg: ServeConfig) -> int:
    memory.tame_malloc()
    logs.configure(cfg.log_level, cfg.log_format)
    # platformdirs warns when XDG_RUNTIME_DIR is unset (as under systemd
    # services and in containers).
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    creds = credentials.load_or_create(cfg.data_dir, cfg.access_key, cfg.secret_key)
    if creds.generated:
        print(
            "Generated root credentials (stored in "
            f"{cfg.data_dir / credentials.FILE_NAME}, mode 0600):\n"
            f"  LOXO_ACCESS_KEY={creds.access_key}\n"
            f"  LOXO_SECRET_KEY={creds.secret_key}\n"
            "Use them as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in your S3 tools.",
            flush=True,
        )
    opened = open_database(cfg)
    if isinstance(opened, int):
        return opened
    dsn, embedded = opened
    app = LoxoApp(cfg, creds, dsn)
    config = uvicorn.Config(
        app,
        host=cfg.host,
        port=cfg.port,
        lifespan="on",
        # uvicorn's own protocol, answering unparseable requests with S3 XML
        http=HttpProtocol,
        # uvicorn's records go through our handlers and format (log_config
        # None: it configures no logging of its own); its INFO lines say what
        # loxo's own events say better, and loxo writes the access log.
        log_config=None,
        log_level="debug" if cfg.log_level == "debug" else "warning",
        access_log=False,
        timeout_graceful_shutdown=30,
        h11_max_incomplete_event_size=64 * 1024,
        ssl_certfile=cfg.tls_cert,
        ssl_keyfile=cfg.tls_key,
    )
    server = _Server(config)
    if cfg.kubernetes is not None:
        server.local_workers = functools.partial(_kubernetes_executor, cfg, creds)
    elif cfg.workers > 0:
        server.local_workers = functools.partial(_local_workers, cfg, creds)
    try:
        server.run()
    finally:
        if embedded is not None:
            embedded.cleanup()
    return 0 if server.started else 1
