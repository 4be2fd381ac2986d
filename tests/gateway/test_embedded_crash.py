"""The embedded PostgreSQL after kill -9: loxo starts again at once on the same
data dir, and a later clean stop still stops the PostgreSQL it attached to.

pg_ctl starts the postmaster in a session of its own (setsid), so killing
loxo's process group does not reach it: "everything" is killed here by pid,
loxo and the postmaster with all of its children, as an OOM kill of the lot
or a power loss would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from tests.conftest import fail_or_skip


def require_pgserver() -> None:
    try:
        with warnings.catch_warnings():  # platformdirs, when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pgserver  # noqa: F401
    except ImportError:
        fail_or_skip("the embedded PostgreSQL needs pgserver (CPython 3.11 or 3.12)")


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


def alive(pid: int) -> bool:
    """Whether `pid` still runs; a zombie (dead, not yet reaped by init) does not."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid)


def kill_postgres(pid: int) -> None:
    """Don't leak a postmaster into the rest of the session."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_gone(pid, 10):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_starts_at_once_after_everything_was_killed(make_server: Any) -> None:
    import psutil

    require_pgserver()
    srv = make_server(embedded=True)
    pgdata = srv.data_dir / "postgres"
    s3 = srv.client()
    s3.create_bucket(Bucket="crash")
    s3.put_object(Bucket="crash", Key="before", Body=b"acknowledged before the crash")
    pm = postmaster_pid(pgdata)
    assert os.getpgid(pm) != os.getpgid(srv.proc.pid)  # why it is killed by pid
    family = [pm] + [child.pid for child in psutil.Process(pm).children(recursive=True)]
    srv.proc.kill()
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    srv.stop(signal.SIGKILL)  # reaps loxo; the postmaster is init's to reap
    try:
        srv.start()  # at once: no waiting for the dead postmaster to be reaped
        log = srv.log_text()
        assert "Traceback" not in log, log
        got = srv.client().get_object(Bucket="crash", Key="before")["Body"].read()
        assert got == b"acknowledged before the crash"
        srv.client().put_object(Bucket="crash", Key="after", Body=b"written after")
        new_pm = postmaster_pid(pgdata)
        assert new_pm != pm
        assert srv.stop(signal.SIGTERM) == 0
        assert wait_gone(new_pm, 15), "the clean stop after the crash left PostgreSQL running"
    finally:
        if srv.running:
            srv.stop(signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError, ValueError):
            kill_postgres(postmaster_pid(pgdata))


def test_clean_stop_after_loxo_alone_was_killed_stops_postgres(make_server: Any) -> None:
    require_pgserver()
    srv = make_server(embedded=True)
    pgdata = srv.data_dir / "postgres"
    s3 = srv.client()
    s3.create_bucket(Bucket="orphan")
    s3.put_object(Bucket="orphan", Key="k", Body=b"v")
    pm = postmaster_pid(pgdata)
    srv.stop(signal.SIGKILL)
    try:
        assert alive(pm), "precondition: the postmaster survives loxo's kill -9"
        srv.restart()
        assert srv.client().get_object(Bucket="orphan", Key="k")["Body"].read() == b"v"
        assert postmaster_pid(pgdata) == pm  # loxo attached to the surviving one
        assert srv.stop(signal.SIGTERM) == 0
        assert wait_gone(pm, 15), (
            f"after a clean SIGTERM the embedded PostgreSQL (pid {pm}) kept running: "
            f"{(pgdata / '.handle_pids.json').read_text()}"
        )
    finally:
        if srv.running:
            srv.stop(signal.SIGKILL)
        kill_postgres(pm)


def test_waits_for_a_killed_postgres_child_holding_shared_memory(make_server: Any) -> None:
    """A child of the killed postmaster that has not exited yet keeps the old
    shared memory attached, and PostgreSQL refuses to start beside it: loxo
    retries until it is gone. The child is held here by SIGSTOP, for 3 s."""
    import psutil

    require_pgserver()
    srv = make_server(embedded=True)
    pgdata = srv.data_dir / "postgres"
    s3 = srv.client()
    s3.create_bucket(Bucket="lingering")
    s3.put_object(Bucket="lingering", Key="k", Body=b"v")
    pm = postmaster_pid(pgdata)
    children = psutil.Process(pm).children()
    held = next(c.pid for c in children if "checkpointer" in " ".join(c.cmdline()))
    os.kill(held, signal.SIGSTOP)
    srv.proc.kill()
    os.kill(pm, signal.SIGKILL)
    for child in children:
        if child.pid != held:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
    srv.stop(signal.SIGKILL)
    release = threading.Timer(3, os.kill, (held, signal.SIGCONT))
    release.start()
    try:
        srv.start()
        log = srv.log_text()
        assert "Traceback" not in log, log
        assert "waiting for PostgreSQL's crash recovery" in log, log
        assert srv.client().get_object(Bucket="lingering", Key="k")["Body"].read() == b"v"
        new_pm = postmaster_pid(pgdata)
        assert srv.stop(signal.SIGTERM) == 0
        assert wait_gone(new_pm, 15), "the clean stop after the crash left PostgreSQL running"
    finally:
        release.join()
        with contextlib.suppress(ProcessLookupError):
            os.kill(held, signal.SIGKILL)
        if srv.running:
            srv.stop(signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError, ValueError):
            kill_postgres(postmaster_pid(pgdata))
