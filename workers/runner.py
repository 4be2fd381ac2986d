"""One attempt of one datum: fetch its inputs into a fresh folder, run its
command there, upload what it wrote, and say how it went.

The folder (docs/design/jobs.md):

    <folder>/pfs/<input name>/<key>   files-mode inputs, by key
    <folder>/pfs/out/                 outputs (uploaded to the output bucket)
    <folder>/conf/                    S3 mode: s3a and AWS configuration

`Attempt.run()` blocks (run it in a thread); `Attempt.cancel()`, from any
thread, stops it (its command's process group is killed) when the lease is
lost. The `Result` serialises to the body of `POST /work/complete`.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError

from workers import environment, process, transfer
from workers.lease import Lease
from workers.transfer import Cancelled, S3Settings

Outcome = Literal["success", "failed", "recovered"]


@dataclass(frozen=True, slots=True)
class Timings:
    download: float = 0.0
    process: float = 0.0
    upload: float = 0.0

    def to_json(self) -> dict[str, float]:
        return {
            "download": round(self.download, 6),
            "process": round(self.process, 6),
            "upload": round(self.upload, 6),
        }


@dataclass(frozen=True, slots=True)
class Result:
    """How an attempt went. `cancelled` ones are not reported (the lease is
    gone); `folder` is where it ran, when kept."""

    attempt: str
    outcome: Outcome
    exit_code: int | None
    stdout: str
    stderr: str
    error: str
    timings: Timings
    cancelled: bool = False
    folder: Path | None = None
    outputs: tuple[transfer.InlineOutput, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The `complete` body of docs/design/jobs.md."""
        return {
            "attempt": self.attempt,
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "error": self.error,
            "timings": self.timings.to_json(),
            **({"outputs": [o.to_json() for o in self.outputs]} if self.outputs else {}),
        }


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '')}: {error.get('Message', '')}".strip(": ")
    return str(exc) or type(exc).__name__


# What a transfer may raise that fails the attempt rather than the worker.
_TRANSFER_ERRORS = (BotoCoreError, ClientError, Boto3Error, OSError)


class Attempt:
    """A datum attempt, run once with `run()`; `cancel()` is thread-safe."""

    def __init__(self, lease: Lease, folder: Path, s3: S3Settings, keep: bool = False) -> None:
        self.lease = lease
        self.folder = folder
        self.s3 = s3
        self.keep = keep
        self._cancel = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Stop the attempt: a transfer stops between files, a command is killed."""
        self._cancel.set()

    def run(self) -> Result:
        try:
            return self._run()
        finally:
            if not self.keep:
                shutil.rmtree(self.folder, ignore_errors=True)

    def _prepare(self) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder)  # a fresh folder: nothing of an earlier attempt
        (self.folder / "pfs" / "out").mkdir(parents=True)
        for item in self.lease.inputs:
            (self.folder / "pfs" / item.name).mkdir(exist_ok=True)
        if self.lease.s3_mode:
            environment.write_s3_conf(self.folder / "conf", self.s3)

    def _run(self) -> Result:
        lease = self.lease
        timings = {"download": 0.0, "process": 0.0, "upload": 0.0}
        captured = ("", "")

        outputs: tuple[transfer.InlineOutput, ...] = ()

        def result(outcome: Outcome, code: int | None, error: str = "") -> Result:
            return Result(
                lease.attempt,
                outcome,
                code,
                captured[0],
                captured[1],
                error,
                Timings(**timings),
                cancelled=self.cancelled,
                folder=self.folder if self.keep else None,
                outputs=outputs if outcome == "success" else (),
            )

        started = time.monotonic()
        try:
            self._prepare()
            for item in lease.inputs:
                if not item.s3:
                    folder = self.folder / "pfs" / item.name
                    transfer.download(self.s3, item.bucket, item.files, folder, self._cancel)
        except Cancelled:
            return result("failed", None, "cancelled")
        except _TRANSFER_ERRORS as exc:
            timings["download"] = time.monotonic() - started
            return result("failed", None, f"download: {_describe(exc)}")
        timings["download"] = time.monotonic() - started

        started = time.monotonic()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            outcome, code, error = self._process(out, err)
            timings["process"] = time.monotonic() - started
            captured = (process.tail(out), process.tail(err))
        if self.cancelled:
            return result("failed", code, "cancelled")
        # With s3_out the command wrote its outputs itself; a local replay
        # (no output bucket) keeps them in pfs/out.
        if outcome != "success" or lease.output_bucket is None or lease.s3_out:
            return result(outcome, code, error)

        started = time.monotonic()
        try:
            out_root = self.folder / "pfs" / "out"
            small, rest = transfer.split_outputs(out_root, *lease.inline_outputs)
            transfer.upload(self.s3, lease.output_bucket, out_root, self._cancel, rest)
            outputs = tuple(small)
        except Cancelled:
            return result("failed", code, "cancelled")
        except _TRANSFER_ERRORS as exc:
            timings["upload"] = time.monotonic() - started
            return result("failed", code, f"upload: {_describe(exc)}")
        timings["upload"] = time.monotonic() - started
        return result("success", code)

    def _process(self, out: Any, err: Any) -> tuple[Outcome, int | None, str]:
        """Run cmd, then err_cmd if cmd failed: (outcome, cmd's exit code, error)."""
        lease, transform = self.lease, self.lease.transform
        env = environment.datum_env(lease, self.folder, self.s3)
        timeout = lease.datum_timeout or None

        def command(argv: tuple[str, ...], stdin: tuple[str, ...]) -> process.Finished:
            return process.run(
                [environment.rewrite_pfs(a, self.folder) for a in argv],
                [environment.rewrite_pfs(line, self.folder) for line in stdin],
                self.folder,
                env,
                out,
                err,
                timeout,
                self._cancel,
            )

        ran = command(transform.cmd, transform.stdin)
        if ran.cancelled:
            return "failed", ran.exit_code, "cancelled"
        accepted = ran.exit_code == 0 or ran.exit_code in transform.accept_return_code
        if accepted and not ran.timed_out:
            return "success", ran.exit_code, ""
        if ran.timed_out:
            error = f"timed out after {lease.datum_timeout:g} s"
        elif ran.error:
            error = ran.error
        else:
            error = f"{transform.cmd[0]} exited with {ran.exit_code}"
        if not transform.err_cmd:
            return "failed", ran.exit_code, error
        recovery = command(transform.err_cmd, transform.err_stdin)
        if recovery.exit_code == 0 and not recovery.cancelled:
            return "recovered", ran.exit_code, error
        why = recovery.error or (
            "timed out" if recovery.timed_out else f"exited with {recovery.exit_code}"
        )
        return "failed", ran.exit_code, f"{error}; err_cmd {why}"
