"""The embedded PostgreSQL: a pgserver instance kept inside the data dir, and
getting it back after a kill -9 of loxo, of PostgreSQL, or of both.

pgserver shares one postmaster between the processes using a data dir (serve,
gc, fsck). It records their pids in PGDATA/.handle_pids.json and stops the
postmaster when the last of them cleans up; it starts one when postmaster.pid
names no running process. Two things go wrong after a kill -9:

* a killed process never removes its pid, so the "last" one never sees
  itself alone and a clean stop leaves the postmaster running: dead pids are
  pruned before attaching;
* a killed postmaster stays a zombie until init reaps it (about a second in
  some containers), which pgserver takes for a running server; and a new one
  first replays the WAL (crash recovery). Until both are over we wait,
  bounded, instead of handing out a database nothing answers on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# How long a start waits for a killed PostgreSQL to be gone and for the next
# one to finish crash recovery.
RECOVERY_WAIT_SECONDS = 60.0


class EmbeddedUnavailable(RuntimeError):
    pass


def _say(message: str) -> None:
    print(f"loxo: {message}", file=sys.stderr, flush=True)


def _running(pid: int) -> bool:
    """Whether process `pid` runs; a zombie (dead, not yet reaped) does not."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop the pids of processes that died holding the server from pgserver's list."""
    path = pgdata / ".handle_pids.json"
    try:
        recorded = json.loads(path.read_text())
    except FileNotFoundError:
        return
    except ValueError:  # torn by a crash mid-write: nobody we can vouch for
        recorded = None
    pids = recorded if isinstance(recorded, list) else []
    alive = [pid for pid in pids if isinstance(pid, int) and _running(pid)]
    if alive != recorded:
        path.write_text(json.dumps(alive))


def _postmaster_settling(pgdata: Path) -> str | None:
    """Why the postmaster postmaster.pid names is not ready to use yet, or None
    when there is none (pgserver starts one) or it is ready (pgserver attaches)."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 8:  # written line by line while the postmaster starts
        return "PostgreSQL is starting"
    try:
        pid = int(lines[0])
    except ValueError:
        return None
    import psutil

    try:
        process = psutil.Process(pid)
        zombie = process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return None  # a stale file: the next postmaster recovers under pg_ctl -w
    except psutil.AccessDenied:
        zombie = False
    if zombie:
        return f"the killed PostgreSQL (pid {pid}) has not exited yet"
    status = lines[7].strip()
    if status != "ready":
        return f"PostgreSQL (pid {pid}) is not ready yet (status: {status or 'starting'})"
    return None


def _wait_until_settled(pgdata: Path, deadline: float) -> None:
    said: str | None = None
    while (reason := _postmaster_settling(pgdata)) is not None and time.monotonic() < deadline:
        if reason != said:
            _say(f"waiting for PostgreSQL's crash recovery: {reason}")
            said = reason
        time.sleep(0.2)


def start(data_dir: Path) -> tuple[str, Any]:
    """Start (or attach to) the embedded server; returns (dsn, handle)."""
    try:
        import pgserver
        from pgserver.postgres_server import PostgresServer
    except ImportError:
        raise EmbeddedUnavailable(
            "the embedded PostgreSQL needs the 'pgserver' package, which has wheels for "
            "CPython 3.11 and 3.12 only. Install python3.12 (or 3.11) and reinstall loxo, or "
            "pass --database-url postgresql://USER@HOST:PORT/DB to use your own PostgreSQL."
        ) from None
    pgdata = data_dir / "postgres"
    pgdata.mkdir(parents=True, exist_ok=True)
    pgdata = pgdata.resolve()  # pgserver keys its handles by the resolved path
    deadline = time.monotonic() + RECOVERY_WAIT_SECONDS
    said = False
    while True:
        # pgserver's own inter-process lock: no other process edits the list meanwhile
        with PostgresServer._lock:
            _forget_dead_handles(pgdata)
        _wait_until_settled(pgdata, deadline)
        final = time.monotonic() >= deadline
        try:
            with _pgserver_quiet(unless=final):
                server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            # pg_ctl failed: the killed postmaster's backends still hold its
            # shared memory, or crash recovery outlasted pg_ctl's 10 s. The
            # half-made handle must not be handed out by the next get_server.
            PostgresServer._instances.pop(pgdata, None)
            if final:
                raise EmbeddedUnavailable(
                    f"the embedded PostgreSQL in {pgdata} did not start within "
                    f"{RECOVERY_WAIT_SECONDS:.0f} s; its log is {pgdata / 'log'}"
                ) from exc
            if not said:
                _say("waiting for PostgreSQL's crash recovery: pg_ctl could not start it yet")
                said = True
            time.sleep(1)
            continue
        return server.get_uri(), server


@contextlib.contextmanager
def _pgserver_quiet(unless: bool) -> Iterator[None]:
    """Keep pgserver from logging an attempt that will be retried: it logs
    a failed pg_ctl at ERROR, with the whole server log."""
    logger = logging.getLogger("pgserver")
    level = logger.level
    if not unless:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
