"""`python -m workers --endpoint URL`: one worker process, until SIGTERM or
Ctrl-C. Keys come from --access-key/--secret-key or LOXO_ACCESS_KEY and
LOXO_SECRET_KEY (the environment keeps them out of `ps`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from gateway.client import logs
from workers.worker import WAIT_SECONDS, Worker, split_names


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m workers", description="Run pipeline datums for a loxo server."
    )
    parser.add_argument("--endpoint", default=os.environ.get("LOXO_ENDPOINT"), help="loxo's URL")
    parser.add_argument("--access-key", default=os.environ.get("LOXO_ACCESS_KEY"))
    parser.add_argument("--secret-key", default=os.environ.get("LOXO_SECRET_KEY"))
    parser.add_argument("--region", default=os.environ.get("LOXO_REGION") or "us-east-1")
    parser.add_argument("--name", help="how the server knows this worker (default host-pid)")
    parser.add_argument("--scratch", help="folder for datum folders (one worker each)")
    parser.add_argument("--parallel", type=int, default=1, help="datums run at once")
    parser.add_argument("--wait-seconds", type=float, default=WAIT_SECONDS, help=argparse.SUPPRESS)
    parser.add_argument("--ca-bundle", help="CA file to trust for an HTTPS endpoint")
    parser.add_argument("--parent-pid", type=int, help="stop when this process is gone")
    parser.add_argument(
        "--pipelines",
        action="append",
        default=[],
        help="run only these pipelines' datums (comma-separated or repeated)",
    )
    parser.add_argument(
        "--job", action="append", default=[], help="run only this job's datums (repeatable)"
    )
    parser.add_argument(
        "--exit-when-idle",
        action="store_true",
        help="exit (0) once no job of its pipelines or jobs is active and it runs nothing",
    )
    parser.add_argument(
        "--log-format",
        choices=("json", "human", "auto"),
        default="auto",
        help="log lines on stderr: json, human, or auto (human on a terminal)",
    )
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info"
    )
    args = parser.parse_args(argv)
    args.pipelines = split_names(args.pipelines)
    missing = [
        flag
        for flag, value in (
            ("--endpoint", args.endpoint),
            ("--access-key", args.access_key),
            ("--secret-key", args.secret_key),
        )
        if not value
    ]
    if missing:
        parser.error(f"{', '.join(missing)} required (or LOXO_ENDPOINT/_ACCESS_KEY/_SECRET_KEY)")
    if args.parallel < 1:
        parser.error("--parallel must be at least 1")
    return args


async def _watch_parent(worker: Worker, parent: int) -> None:
    # A worker the server started must not outlive it, even a killed server:
    # once orphaned, its parent is no longer that process.
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    worker.stop()


async def _serve(worker: Worker, parent: int | None) -> None:
    watch = asyncio.create_task(_watch_parent(worker, parent)) if parent else None
    try:
        await worker.run_until_signalled()
    finally:
        if watch is not None:
            watch.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    logs.configure(args.log_level, args.log_format)
    # One line per datum is the worker's log; every HTTP call would drown it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    worker = Worker(
        args.endpoint,
        args.access_key,
        args.secret_key,
        region=args.region,
        name=args.name,
        scratch_dir=args.scratch,
        parallel=args.parallel,
        wait_seconds=args.wait_seconds,
        verify=args.ca_bundle or True,
        pipelines=args.pipelines,
        jobs=args.job,
        exit_when_idle=args.exit_when_idle,
    )
    try:
        asyncio.run(_serve(worker, args.parent_pid))
    except RuntimeError as exc:  # e.g. the scratch folder is another worker's
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
