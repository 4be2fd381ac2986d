"""workers.local.LocalWorkers: real worker processes against a real server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from workers.local import STOP_GRACE_SECONDS, LocalWorkers


def _wait_for(condition: Any, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_local_workers_start_restart_and_stop(server: Any, tmp_path: Path) -> None:
    workers = LocalWorkers(
        2, server.endpoint, server.access_key, server.secret_key, "us-east-1", tmp_path / "w"
    )
    workers.start()
    try:
        assert _wait_for(lambda: len(workers.pids) == 2)
        first = workers.pids
        # Keys go through the environment, not the command line anyone can read.
        cmdline = Path(f"/proc/{first[0]}/cmdline").read_bytes()
        assert server.secret_key.encode() not in cmdline
        assert _wait_for(lambda: (tmp_path / "w" / "0" / "attempts").is_dir())
        assert _wait_for(lambda: (tmp_path / "w" / "1" / "attempts").is_dir())

        os.kill(first[0], signal.SIGKILL)
        assert _wait_for(lambda: len(workers.pids) == 2 and first[0] not in workers.pids)
        assert first[1] in workers.pids  # the other one was left alone
        running = workers.pids
    finally:
        stopping = time.monotonic()
        workers.stop()
    # SIGTERM was enough: no worker needed the SIGKILL that follows the grace time.
    assert time.monotonic() - stopping < STOP_GRACE_SECONDS
    assert workers.pids == []
    assert not any(_alive(pid) for pid in running)


def test_on_demand_workers_run_only_while_wanted(server: Any, tmp_path: Path) -> None:
    workers = LocalWorkers(
        2,
        server.endpoint,
        server.access_key,
        server.secret_key,
        "us-east-1",
        tmp_path / "w",
        on_demand=True,
    )
    workers.start()
    try:
        assert workers.pids == []
        workers.want(True)
        assert _wait_for(lambda: len(workers.pids) == 2)
        running = workers.pids
        workers.want(False)
        assert _wait_for(lambda: workers.pids == [] and not any(_alive(p) for p in running))
        workers.want(True)  # and back: new processes
        assert _wait_for(lambda: len(workers.pids) == 2)
        assert not set(workers.pids) & set(running)
    finally:
        workers.stop()
    assert workers.pids == []
