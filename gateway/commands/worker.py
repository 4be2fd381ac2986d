"""`loxo worker` (run datums for a loxo server, from any machine) and `loxo
datum run --local` (replay one datum here, in a folder you can look into).
Both run datums with the `workers` package, which needs only HTTP access.

Register with the epilogs below, e.g.
`app.command(epilog=WORKER_EPILOG)(worker)` and
`datum_app.command("run", epilog=DATUM_RUN_EPILOG)(datum_run)`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gateway.commands.common import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Settings,
    client,
    err,
    fail,
    out,
)

if TYPE_CHECKING:
    from workers.runner import Result

WORKER_EPILOG = (
    "Examples: loxo worker  |  loxo worker --parallel 4 --scratch /fast/disk/loxo  |  "
    "loxo worker --endpoint https://loxo.example.com --name gpu-1   "
    "(keys: `loxo config set`, or LOXO_ACCESS_KEY and LOXO_SECRET_KEY)"
)
DATUM_RUN_EPILOG = (
    "Examples: loxo datum run 3f2a... 9c41... --local  |  "
    "loxo datum run 3f2a... 9c41... --local --folder ./replay   "
    "(the job and datum ids: `loxo job list`, `loxo datum list JOB`)"
)


def worker(
    endpoint: str = typer.Option(
        None, help="loxo's URL (default: the configured endpoint, or LOXO_ENDPOINT)."
    ),
    parallel: int = typer.Option(1, min=1, help="How many datums to run at once."),
    scratch: Path = typer.Option(  # noqa: B008
        None,
        help="Folder for the datum folders, this worker's own (default: one under the "
        "system temp dir). Cleared at start.",
    ),
    name: str = typer.Option(None, help="How the server knows this worker (default: HOST-PID)."),
    pipelines: list[str] = typer.Option(  # noqa: B008 - typer's way to declare a repeatable option
        [],
        help="Run only these pipelines' datums (comma-separated or repeated).",
    ),
    job: list[str] = typer.Option(  # noqa: B008
        [], help="Run only this job's datums (repeatable)."
    ),
    exit_when_idle: bool = typer.Option(
        False,
        "--exit-when-idle",
        help="Exit (code 0) once no job of its --pipelines or --job is active and it runs "
        "nothing: how a Kubernetes pod of one job ends.",
    ),
    log_format: str = typer.Option(
        "auto", help="Log lines on stderr: json, human, or auto (human on a terminal)."
    ),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
) -> None:
    """Run pipeline datums for a loxo server until Ctrl-C or SIGTERM: lease
    datums, run each in a fresh folder (inputs under pfs/<input>, outputs from
    pfs/out), report how it went. Needs only HTTP access to loxo, so it runs on
    any machine; start as many as you like. A stopped worker's datums run again
    elsewhere once their leases expire."""
    from gateway.client import logs
    from workers.worker import Worker, split_names

    settings = Settings.load()
    if endpoint:
        settings = Settings(endpoint, settings.access_key, settings.secret_key, settings.region)
    url, access, secret = settings.require()
    if log_format not in ("json", "human", "auto"):
        fail(f"--log-format must be json, human or auto (got {log_format!r})", EXIT_USAGE)
    if log_level not in ("debug", "info", "warning", "error"):
        fail(f"--log-level must be debug, info, warning or error (got {log_level!r})", EXIT_USAGE)
    logs.configure(log_level, log_format)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    runner = Worker(
        url,
        access,
        secret,
        region=settings.region,
        name=name,
        scratch_dir=scratch,
        parallel=parallel,
        pipelines=split_names(pipelines),
        jobs=job,
        exit_when_idle=exit_when_idle,
    )
    try:
        asyncio.run(runner.run_until_signalled())
    except RuntimeError as exc:  # another worker holds the scratch folder
        fail(str(exc), EXIT_USAGE)


def datum_run(
    job: str = typer.Argument(..., metavar="JOB", help="The job id."),
    datum: str = typer.Argument(..., metavar="DATUM", help="The datum id."),
    local: bool = typer.Option(
        False, "--local", help="Run it here (needed: datums run again on workers with restart)."
    ),
    folder: Path = typer.Option(  # noqa: B008
        None,
        "--folder",
        help="Where to run it: an empty or new folder (default: a new one under the system "
        "temp dir). Kept afterwards.",
    ),
) -> None:
    """Replay one datum on this machine: the exact input files and environment
    its job gave it, in a folder that is kept (inputs in pfs/<input>, outputs
    in pfs/out; nothing is uploaded). Prints the folder and exits with the
    command's exit code."""
    from workers.lease import Lease, LeaseError
    from workers.runner import Attempt
    from workers.transfer import S3Settings

    if not local:
        fail(
            "only --local is supported: `loxo datum run JOB DATUM --local` replays it here",
            EXIT_USAGE,
        )
    if folder is not None and folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        fail(f"{folder} is not an empty folder: give a new or empty one", EXIT_USAGE)
    with client() as api:
        doc = api.inspect_datum(job, datum)
    try:
        # A replay uploads nothing, whatever the lease says.
        lease = Lease.from_json({**doc.get("lease", {}), "output_bucket": None})
    except LeaseError as exc:
        fail(f"the server's answer has no usable lease for this datum: {exc}")
    target = folder or Path(tempfile.mkdtemp(prefix=f"loxo-datum-{datum[:8]}-"))
    settings = Settings.load()
    url, access, secret = settings.require()
    s3 = S3Settings(url, access, secret, settings.region)
    err.print(f"running datum {datum[:12]} of {lease.pipeline} in {target.resolve()}")
    attempt = Attempt(lease, target.resolve(), s3, keep=True)
    results: list[Result] = []
    # In a thread: a Ctrl-C lands here, and the command (in its own process
    # group, out of the terminal's reach) is killed by cancel().
    thread = threading.Thread(target=lambda: results.append(attempt.run()), daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)
    except KeyboardInterrupt:
        attempt.cancel()
        thread.join()
        fail(f"interrupted; the folder stays: {target.resolve()}", EXIT_INTERRUPTED)
    if not results:
        fail(f"the run failed; see above. The folder stays: {target.resolve()}")
    result = results[0]
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    out.print(f"{result.outcome}: folder {target.resolve()} (outputs in pfs/out)")
    if result.error:
        err.print(f"error: {result.error}", markup=False)
    if result.exit_code is None:
        raise typer.Exit(1)
    code = result.exit_code
    # A command killed by signal N reports -N; shells say 128 + N.
    raise typer.Exit(128 - code if code < 0 else code)
