"""The worker loop: lease datums, run up to `parallel` at once, keep their
leases alive, report how each went (docs/design/jobs.md, worker protocol).

A worker may be dedicated to some pipelines or jobs (`pipelines`, `jobs`:
it leases only their datums), and with `exit_when_idle` it ends once its
work is done: a lease poll found nothing, it runs nothing, and no job it
serves is active. That is how a Kubernetes pod of one loxo job ends with
exit code 0 (docs/design/executors.md).

Only the server decides what runs; a worker holds nothing it cannot lose. An
attempt whose lease is lost (the heartbeat says so) is killed and not
reported; an attempt abandoned by a stopping or dying worker expires on the
server and runs again elsewhere. Network trouble never ends the loop: each
call backs off and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import httpx

from gateway.client import AsyncClient, LoxoError
from workers.lease import Lease, LeaseError
from workers.runner import Attempt, Result, Timings
from workers.transfer import S3Settings

log = logging.getLogger("loxo.worker")

WAIT_SECONDS = 10.0  # the lease call's long-poll
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
DEFAULT_LEASE_SECONDS = 30.0
# How long a finished attempt's report is retried through network trouble:
# past that its lease has surely expired and the datum runs again anyway.
REPORT_RETRY_SECONDS = 300.0
HEARTBEAT_NAP = 0.1
ACTIVE_JOB_STATES = ("created", "running")


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def split_names(values: Sequence[str]) -> list[str]:
    """Repeated and comma-separated option values, in order, once each."""
    out: list[str] = []
    for value in values:
        for name in value.split(","):
            if name.strip() and name.strip() not in out:
                out.append(name.strip())
    return out


def _transient(exc: BaseException) -> bool:
    """Worth retrying: the server unreachable, overloaded or restarting."""
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, LoxoError) and (exc.status >= 500 or exc.code == "bad_response")


def _folder_name(attempt: str) -> str:
    # The attempt id comes from the server: it must stay one folder name.
    return re.sub(r"[^A-Za-z0-9_.-]", "_", attempt).lstrip(".") or "attempt"


class Worker:
    """Runs datums for a loxo server until `stop()` (or SIGTERM/SIGINT under
    `run_until_signalled`)."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        name: str | None = None,
        scratch_dir: Path | str | None = None,
        parallel: int = 1,
        lease_batch: int | None = None,
        wait_seconds: float = WAIT_SECONDS,
        verify: bool | str = True,
        pipelines: Sequence[str] = (),
        jobs: Sequence[str] = (),
        exit_when_idle: bool = False,
    ) -> None:
        if parallel < 1:
            raise ValueError("parallel must be at least 1")
        self.name = name or default_name()
        # Empty: any pipeline's, any job's datums.
        self.pipelines = tuple(pipelines)
        self.jobs = tuple(jobs)
        self.exit_when_idle = exit_when_idle
        self.parallel = parallel
        self.lease_batch = max(1, min(lease_batch or parallel, 2 * parallel, 100))
        self.wait_seconds = wait_seconds
        self.s3 = S3Settings(endpoint, access_key, secret_key, region, verify)
        self._access = (endpoint, access_key, secret_key, region, verify)
        base = Path(tempfile.gettempdir()) / f"loxo-worker-{_folder_name(self.name)}"
        self.scratch = Path(scratch_dir) if scratch_dir is not None else base
        self.lease_seconds = DEFAULT_LEASE_SECONDS
        self._held: dict[str, Attempt] = {}
        # Reports on their way: they hold no slot, so the next datum starts
        # while the server records the last one (at most 2 x parallel).
        self._reports: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._lock_file: IO[str] | None = None

    # -- lifecycle -----------------------------------------------------------------

    def stop(self) -> None:
        """Stop leasing and abandon the running attempts (call on the loop's thread)."""
        self._stopping.set()

    def _claim_scratch(self) -> Path:
        """Lock the scratch dir (one worker each) and clear what a dead worker left."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        lock = open(self.scratch / ".lock", "w")  # noqa: SIM115 - held while running
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise RuntimeError(f"another worker uses {self.scratch}: give each its own") from None
        self._lock_file = lock
        attempts = self.scratch / "attempts"
        shutil.rmtree(attempts, ignore_errors=True)
        attempts.mkdir()
        return attempts

    async def run(self) -> None:
        """The loop, until `stop()`."""
        attempts_dir = self._claim_scratch()
        endpoint, access, secret, region, verify = self._access
        pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="loxo-datum")
        running: set[asyncio.Task[None]] = set()
        log.info("worker %s: serving %s, %d at once", self.name, endpoint, self.parallel)
        async with AsyncClient(endpoint, access, secret, region, verify=verify) as api:
            beats = asyncio.create_task(self._heartbeats(api))
            try:
                await self._lease_loop(api, pool, attempts_dir, running)
            finally:
                beats.cancel()
                for attempt in self._held.values():
                    attempt.cancel()
                # The attempts end quickly once cancelled; their leases expire.
                await asyncio.gather(*running, return_exceptions=True)
                await asyncio.gather(*self._reports, return_exceptions=True)
                with contextlib.suppress(asyncio.CancelledError):
                    await beats
                pool.shutdown(wait=True)
                if self._lock_file is not None:
                    self._lock_file.close()
        log.info("worker %s: stopped", self.name)

    async def run_until_signalled(self) -> None:
        """`run()`, stopping cleanly on SIGTERM or SIGINT."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        try:
            await self.run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    # -- leasing ---------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        """Sleep, cut short by stop()."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _until_stopped(self, call: Any) -> Any:
        """Await `call`, or None as soon as stop() is called."""
        task = asyncio.ensure_future(call)
        stop = asyncio.ensure_future(self._stopping.wait())
        done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            stop.cancel()
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        return None

    async def _lease_loop(
        self,
        api: AsyncClient,
        pool: ThreadPoolExecutor,
        attempts_dir: Path,
        running: set[asyncio.Task[None]],
    ) -> None:
        backoff = BACKOFF_FIRST
        while not self._stopping.is_set():
            # `parallel` run at once and as many more wait their turn, leased
            # and heartbeated: a slot that frees starts its next datum at
            # once instead of after a lease call.
            free = 2 * self.parallel - len(running)
            if free <= 0:
                # Full: wait for an attempt to end (or for stop()).
                stop = asyncio.ensure_future(self._stopping.wait())
                await asyncio.wait({*running, stop}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                continue
            try:
                doc = await self._until_stopped(
                    api.lease_datums(
                        self.name,
                        min(free, self.lease_batch),
                        self.wait_seconds,
                        list(self.pipelines) or None,
                        list(self.jobs) or None,
                    )
                )
            except Exception as exc:
                log.warning(
                    "worker %s: lease failed (%s); retrying in %.1f s", self.name, exc, backoff
                )
                await self._sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            if doc is None:
                break  # stopped while waiting
            backoff = BACKOFF_FIRST
            self.lease_seconds = float(doc.get("lease_seconds") or DEFAULT_LEASE_SECONDS)
            items = doc.get("items", [])
            idle = not running and not self._reports
            if not items and idle and self.exit_when_idle and await self._done(api):
                log.info("worker %s: no job of its own is active: exiting", self.name)
                break
            for item in items:
                task = asyncio.create_task(self._attempt(api, pool, attempts_dir, item))
                running.add(task)
                task.add_done_callback(running.discard)

    async def _done(self, api: AsyncClient) -> bool:
        """No job this worker serves is active (created or running) any more.
        Asked only after an empty lease poll: a job whose last datum runs
        elsewhere is still active, and that datum may yet come back here
        (its worker dies, its lease expires)."""
        try:
            if self.jobs:
                for job in self.jobs:
                    try:
                        doc = await api.inspect_job(job)
                    except LoxoError as exc:
                        if exc.status == 404:  # its pipeline was deleted
                            continue
                        raise
                    if doc.get("state") in ACTIVE_JOB_STATES:
                        return False
                return True
            for pipeline in self.pipelines or (None,):
                for state in ACTIVE_JOB_STATES:
                    try:
                        async for _ in api.list_jobs(pipeline=pipeline, state=state):
                            return False
                    except LoxoError as exc:
                        if exc.status != 404:
                            raise
            return True
        except Exception as exc:
            # Unsure is not done: the next empty poll asks again.
            log.warning("worker %s: could not check its jobs: %s", self.name, exc)
            return False

    # -- one attempt ---------------------------------------------------------------------

    async def _attempt(
        self, api: AsyncClient, pool: ThreadPoolExecutor, attempts_dir: Path, item: Any
    ) -> None:
        try:
            lease = Lease.from_json(item)
        except LeaseError as exc:
            attempt_id = item.get("attempt", "") if isinstance(item, dict) else ""
            log.error("worker %s: bad lease %s: %s", self.name, attempt_id, exc)
            if attempt_id:
                bad = Result(attempt_id, "failed", None, "", "", f"bad lease: {exc}", Timings())
                await self._report(api, bad, None)
            return
        attempt = Attempt(lease, attempts_dir / _folder_name(lease.attempt), self.s3)
        self._held[lease.attempt] = attempt
        handed_over = False
        try:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(pool, attempt.run)
            if result.cancelled:
                self._log(lease, "lost" if not self._stopping.is_set() else "abandoned", result)
                return
            if len(self._reports) < 2 * self.parallel:
                task = asyncio.create_task(self._report_and_drop(api, result, lease))
                self._reports.add(task)
                task.add_done_callback(self._reports.discard)
                handed_over = True
            else:
                await self._report(api, result, lease)
        except Exception:
            # A bug of ours must not end the loop; the lease expires and the
            # datum runs again.
            log.exception("worker %s: attempt %s crashed", self.name, lease.attempt)
        finally:
            # Held (heartbeated) until reported: the report must find it held.
            if not handed_over:
                self._held.pop(lease.attempt, None)

    async def _report_and_drop(self, api: AsyncClient, result: Result, lease: Lease) -> None:
        try:
            await self._report(api, result, lease)
        except Exception:
            log.exception("worker %s: report of %s crashed", self.name, lease.attempt)
        finally:
            self._held.pop(lease.attempt, None)

    async def _report(self, api: AsyncClient, result: Result, lease: Lease | None) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REPORT_RETRY_SECONDS
        backoff = BACKOFF_FIRST
        while True:
            try:
                answer = await api.complete_datum({**result.to_json(), "worker": self.name})
            except Exception as exc:
                if isinstance(exc, LoxoError) and exc.code == "lease_lost":
                    if lease is not None:
                        self._log(lease, f"{result.outcome} (lease lost: dropped)", result)
                    return
                if not _transient(exc) or loop.time() > deadline or self._stopping.is_set():
                    log.error(
                        "worker %s: could not report attempt %s: %s",
                        self.name,
                        result.attempt,
                        exc,
                    )
                    return
                await self._sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            if lease is not None:
                self._log(lease, f"{result.outcome} -> {answer.get('state', '?')}", result)
            return

    def _log(self, lease: Lease, outcome: str, result: Result) -> None:
        t = result.timings
        log.info(
            "%s job %s datum %s %s%s download %.2fs process %.2fs upload %.2fs%s",
            lease.pipeline,
            lease.job[:8],
            lease.datum[:8],
            outcome,
            f" (exit {result.exit_code})" if result.exit_code not in (None, 0) else "",
            t.download,
            t.process,
            t.upload,
            f": {result.error}" if result.error else "",
        )

    # -- heartbeats ------------------------------------------------------------------------

    async def _heartbeats(self, api: AsyncClient) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            # Short naps: the period follows lease_seconds, which the first
            # lease answer may shorten well below the default.
            await asyncio.sleep(HEARTBEAT_NAP)
            if loop.time() - last < self.lease_seconds / 3:
                continue
            last = loop.time()
            held = list(self._held)
            if not held:
                continue
            try:
                lost = await api.heartbeat(self.name, held)
            except Exception as exc:
                log.warning("worker %s: heartbeat failed: %s", self.name, exc)
                continue
            for attempt_id in lost:
                attempt = self._held.get(attempt_id)
                if attempt is not None:
                    log.warning("worker %s: lease of %s lost: killing it", self.name, attempt_id)
                    attempt.cancel()
