"""The worker loop as a process (`python -m workers`): what it does when
loxo is not there, and how it stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_worker(
    endpoint: str, scratch: Path, access: str = "key", secret: str = "secret", *extra: str
) -> subprocess.Popen[str]:
    env = {**os.environ, "LOXO_ACCESS_KEY": access, "LOXO_SECRET_KEY": secret}
    return subprocess.Popen(
        [sys.executable, "-m", "workers", "--endpoint", endpoint, "--scratch", str(scratch),
         *extra],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_an_unreachable_server_is_retried_and_sigterm_stops_the_worker(tmp_path: Path) -> None:
    worker = start_worker(f"http://127.0.0.1:{_closed_port()}", tmp_path / "scratch")
    try:
        time.sleep(3)
        assert worker.poll() is None, worker.communicate()[1]  # still running, retrying
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, stderr
    assert "lease failed" in stderr and "retrying" in stderr
    assert stderr.rstrip().endswith("stopped")


def test_two_workers_cannot_share_a_scratch_folder(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    first = start_worker(endpoint, tmp_path / "scratch")
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "scratch" / "attempts").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = start_worker(endpoint, tmp_path / "scratch")
        _, stderr = second.communicate(timeout=30)
        assert second.returncode == 1
        assert "another worker uses" in stderr
        assert first.poll() is None
    finally:
        first.terminate()
        first.communicate(timeout=10)


def test_missing_keys_are_a_usage_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOXO_")}
    proc = subprocess.run(
        [sys.executable, "-m", "workers", "--endpoint", "http://127.0.0.1:1"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "--access-key, --secret-key required" in proc.stderr
