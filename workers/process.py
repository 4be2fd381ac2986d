"""One command of a datum as an OS process: its own process group (so a
timeout or a lost lease kills what it started too), stdin from a file,
stdout and stderr to files of which only the tail is ever read back, so a
chatty command costs disk, never memory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

TAIL_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Finished:
    """How a command ended. `exit_code` None: it could not start (`error` says why)."""

    exit_code: int | None
    timed_out: bool = False
    cancelled: bool = False
    error: str = ""


def tail(capture: BinaryIO, limit: int = TAIL_BYTES) -> str:
    """The last `limit` bytes written to `capture`, as text."""
    capture.flush()
    size = capture.seek(0, os.SEEK_END)
    capture.seek(max(0, size - limit))
    data = capture.read(limit)
    capture.seek(0, os.SEEK_END)
    # A cut may split a UTF-8 sequence: the broken start becomes U+FFFD.
    return data.decode("utf-8", "replace")


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pid, signal.SIGKILL)


def run(
    argv: Sequence[str],
    stdin_lines: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    stdout: BinaryIO,
    stderr: BinaryIO,
    timeout: float | None,
    cancel: threading.Event,
) -> Finished:
    """Run `argv` to its end, its timeout (seconds, None: none) or `cancel`."""
    if cancel.is_set():
        return Finished(None, cancelled=True, error="cancelled")
    with tempfile.TemporaryFile() as stdin:
        if stdin_lines:
            # Joined as Pachyderm joins them: no newline after the last line.
            stdin.write("\n".join(stdin_lines).encode())
            stdin.seek(0)
        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        except OSError as exc:
            return Finished(None, error=f"cannot run {argv[0]}: {exc.strerror or exc}")
    deadline = None if not timeout else time.monotonic() + timeout
    step = 0.005
    timed_out = cancelled = False
    while True:
        try:
            # Short, growing waits: a quick command is seen ending at once,
            # a long one costs few wake-ups, and a cancel is noticed in 0.1 s.
            proc.wait(step)
            break
        except subprocess.TimeoutExpired:
            step = min(step * 2, 0.1)
        if cancel.is_set():
            cancelled = True
        elif deadline is not None and time.monotonic() >= deadline:
            timed_out = True
        if cancelled or timed_out:
            _kill_group(proc.pid)
            proc.wait()
            break
    # What the command left running in the background would keep writing to
    # the folder while its outputs upload, or outlive the datum.
    _kill_group(proc.pid)
    return Finished(proc.returncode, timed_out=timed_out, cancelled=cancelled)
