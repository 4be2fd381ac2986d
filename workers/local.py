"""Worker processes on the server's own machine: `loxo serve` starts
`count` of them (`python -m workers`), each with its own scratch folder
`<scratch_root>/<i>`, restarts one that dies, and stops them all with it.

With `on_demand`, they run only while the server says they are wanted
(`want`): `loxo serve` wants them while any pipeline exists, so a server
nobody runs pipelines on holds no worker processes (about 55 MB each).

They are separate processes, not threads of the server, so a datum's
command, memory or crash never touches the server, and they talk to it
exactly as remote workers do (HTTP). Keys travel in the environment, never
on a command line others can read.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

STOP_GRACE_SECONDS = 5.0
SUPERVISE_EVERY = 0.5
# A worker that keeps dying right away is restarted at most this often.
RESTART_MIN_INTERVAL = 2.0


class LocalWorkers:
    def __init__(
        self,
        count: int,
        endpoint: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        scratch_root: Path | str = "workers",
        ca_bundle: str | None = None,
        parallel: int = 1,
        log_format: str = "auto",
        log_level: str = "info",
        on_demand: bool = False,
    ) -> None:
        self.count = count
        # The server's choices: the workers' lines join its stderr stream.
        self.log_args = ["--log-format", log_format, "--log-level", log_level]
        # Datums each worker runs at once: overlapping one datum's transfers
        # with another's command keeps the cores busy on small datums.
        self.parallel = parallel
        self.endpoint = endpoint
        self.scratch_root = Path(scratch_root)
        self.ca_bundle = ca_bundle
        self._env = {
            **os.environ,
            "LOXO_ACCESS_KEY": access_key,
            "LOXO_SECRET_KEY": secret_key,
            "LOXO_REGION": region,
        }
        self._procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self._started_at = [0.0] * count
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._nudge = threading.Event()
        self._wanted = not on_demand
        self._supervisor: threading.Thread | None = None

    def want(self, wanted: bool) -> None:
        """Run the workers, or stop them (gracefully, as stop() does). The
        supervisor acts on a change at once."""
        if wanted != self._wanted:
            self._wanted = wanted
            self._nudge.set()

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids, those running now."""
        with self._lock:
            return [p.pid for p in self._procs if p is not None and p.poll() is None]

    def _spawn(self, i: int) -> None:
        scratch = self.scratch_root / str(i)
        scratch.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "workers",
            "--endpoint",
            self.endpoint,
            "--scratch",
            str(scratch),
            "--name",
            f"{os.uname().nodename}-local-{i}",
            "--parallel",
            str(self.parallel),
        ]
        if self.ca_bundle:
            cmd += ["--ca-bundle", self.ca_bundle]
        # Their own session: a Ctrl-C meant for the server does not reach them
        # (the server stops them); --parent-pid ends them if the server dies.
        cmd += ["--parent-pid", str(os.getpid()), *self.log_args]
        self._procs[i] = subprocess.Popen(
            cmd, env=self._env, stdin=subprocess.DEVNULL, start_new_session=True
        )
        self._started_at[i] = time.monotonic()

    def start(self) -> None:
        with self._lock:
            if self._wanted:
                for i in range(self.count):
                    self._spawn(i)
        self._supervisor = threading.Thread(
            target=self._supervise, name="loxo-local-workers", daemon=True
        )
        self._supervisor.start()

    def _supervise(self) -> None:
        while True:
            self._nudge.wait(SUPERVISE_EVERY)
            self._nudge.clear()
            unwanted: list[subprocess.Popen[bytes]] = []
            with self._lock:
                if self._stopping.is_set():
                    return
                wanted = self._wanted
                for i, proc in enumerate(self._procs):
                    running = proc is not None and proc.poll() is None
                    if not wanted:
                        if running:
                            assert proc is not None
                            unwanted.append(proc)
                        self._procs[i] = None
                        continue
                    if running:
                        continue
                    if proc is not None:
                        if time.monotonic() - self._started_at[i] < RESTART_MIN_INTERVAL:
                            continue
                        print(
                            f"loxo: local worker {i} (pid {proc.pid}) exited with "
                            f"{proc.returncode}; restarting it",
                            file=sys.stderr,
                        )
                    self._spawn(i)
            if unwanted:
                _end(unwanted, STOP_GRACE_SECONDS)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM every worker, SIGKILL those still running after `grace` s."""
        self._stopping.set()
        self._nudge.set()
        if self._supervisor is not None:
            self._supervisor.join()
        with self._lock:
            procs = [p for p in self._procs if p is not None]
        _end(procs, grace)


def _end(procs: list[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM the processes, SIGKILL those still running after `grace` s."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
