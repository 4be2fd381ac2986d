"""`loxo put`, `get`, `ls` and `cat`: files through the S3 API."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from gateway.client import transfer
from gateway.commands.common import (
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    OUTPUT,
    Output,
    Settings,
    Target,
    client,
    err,
    fail,
    human,
    out,
    plural,
    print_json,
    ref_text,
    require_branch,
    table,
    target,
    when,
)


@contextmanager
def progress_bar(total: int, what: str, quiet: bool) -> Iterator[transfer.Progress | None]:
    """A progress bar with rate and ETA on stderr (none when quiet or not a terminal)."""
    if quiet or not err.is_terminal:
        yield None
        return
    lock = threading.Lock()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
    ) as bar:
        task = bar.add_task(what, total=total)

        def advance(n: int) -> None:
            with lock:
                bar.update(task, advance=n)

        yield advance


def _s3() -> Any:
    s = Settings.load()
    endpoint, access, secret = s.require()
    return transfer.s3_client(endpoint, access, secret, s.region)


def put(
    local: Path = typer.Argument(..., metavar="LOCAL_FILE_OR_DIR", exists=True),  # noqa: B008
    dest: str = typer.Argument(..., metavar="REPO@BRANCH:PATH"),
    message: str = typer.Option(None, "-m", "--message", help="The commit message."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
    output: Output = OUTPUT,
) -> None:
    """Upload a file, or a directory as ONE commit (its contents land under PATH).

    Examples: loxo put ./labels images@main:labels   (labels/a.csv -> labels/a.csv)
              loxo put cat.png images@main:raw/       (-> raw/cat.png)
    """
    t = target(dest, need_ref=True)
    s3 = _s3()
    try:
        commit, keys = _put(local, t, message, quiet, s3)
    except transfer.Interrupted as stop:
        if stop.aborted:
            fail(
                f"interrupted: aborted open commit {stop.open_commit} on "
                f"{stop.repo}@{stop.branch}, nothing was committed",
                EXIT_INTERRUPTED,
            )
        fail(
            f"interrupted: open commit {stop.open_commit} on {stop.repo}@{stop.branch} could "
            f"not be aborted; nothing was committed. Abort it with `loxo commit abort "
            f"{stop.repo}@{stop.open_commit}`",
            EXIT_INTERRUPTED,
        )
    except KeyboardInterrupt:
        fail(f"interrupted: nothing was committed to {ref_text(t)}", EXIT_INTERRUPTED)
    if output is Output.json:
        print_json({"commit": commit, "files": keys})
    else:
        out.print(
            f"{plural(keys, 'file')} -> {t.repo}@{t.ref}:{t.path or '/'}"
            f" (commit {commit or 'none: nothing changed'})"
        )


def _put(
    local: Path, t: Target, message: str | None, quiet: bool, s3: Any
) -> tuple[str | None, int]:
    """Upload for `put`: (the commit id, or None; how many files)."""
    with client() as api:
        require_branch(api, t.repo, t.name)
        if local.is_dir():
            files = list(transfer.local_files(local))
            size = sum(f.stat().st_size for f, _ in files)
            with progress_bar(size, f"put {plural(len(files), 'file')}", quiet) as advance:
                commit = transfer.put_directory(
                    api,
                    s3,
                    local,
                    t.repo,
                    t.ref or "",
                    t.path,
                    message or f"put {plural(len(files), 'file')} into {t.path or '/'}",
                    advance,
                )
            keys = len(files)
        else:
            key = transfer.file_key(local, t.path)
            with progress_bar(local.stat().st_size, f"put {local.name}", quiet) as advance:
                if message:
                    # S3 has no commit message: an open commit carries it.
                    commit = transfer.put_files(
                        api, s3, [(local, key)], t.repo, t.name, message, advance
                    )
                else:
                    transfer.upload_files(s3, f"{t.repo}.{t.name}", [(local, key)], advance)
                    # The version of what we wrote is the commit that wrote it.
                    commit = s3.head_object(Bucket=f"{t.repo}.{t.name}", Key=key)["VersionId"]
            keys = 1
    return commit, keys


def get(
    src: str = typer.Argument(..., metavar="REPO@REF:PATH"),
    local: Path = typer.Argument(..., metavar="LOCAL"),  # noqa: B008
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
    output: Output = OUTPUT,
) -> None:
    """Download a file, or a folder's contents into LOCAL.

    Example: loxo get images@v1:labels ./labels-v1
    """
    t = target(src)
    s3 = _s3()
    with client() as api:
        bucket = transfer.bucket_for(api, t.repo, t.ref)
        try:
            jobs = transfer.plan_download(s3, bucket, t.path, local)
        except FileNotFoundError:
            fail(f"{ref_text(t)} has no file or folder {t.path or '/'}", EXIT_NOT_FOUND)
        size = sum(job.size for job in jobs)
        with progress_bar(size, f"get {t.path or '/'}", quiet) as advance:
            transfer.download(s3, bucket, jobs, advance)
        written = [job.target for job in jobs]
    if output is Output.json:
        print_json({"files": [str(p) for p in written], "bytes": size})
    else:
        out.print(f"{plural(len(written), 'file')} ({human(size)}) -> {local}")


def ls(
    where: str = typer.Argument(..., metavar="REPO[@REF][:PATH]"),
    output: Output = OUTPUT,
) -> None:
    """List a folder (one level; folders end with /).

    Example: loxo ls images@main:labels/
    """
    t = target(where)
    s3 = _s3()
    with client() as api:
        bucket = transfer.bucket_for(api, t.repo, t.ref)
        items = list(transfer.listing(s3, bucket, t.path))
    if not items and t.path:
        fail(f"{ref_text(t)} has no file or folder {t.path}", EXIT_NOT_FOUND)
    if output is Output.json:
        print_json(items)
        return
    table(
        ["SIZE", "MODIFIED", "PATH"],
        [("DIR" if i.is_dir else human(i.size), when(i.modified), i.path) for i in items],
    )


def cat(where: str = typer.Argument(..., metavar="REPO@REF:PATH")) -> None:
    """Print a file's bytes.

    Example: loxo cat images@main~1:labels/cats.csv
    """
    t = target(where)
    if not t.path:
        fail("name the file: REPO@REF:PATH", EXIT_USAGE)
    s3 = _s3()
    with client() as api:
        bucket = transfer.bucket_for(api, t.repo, t.ref)
        try:
            transfer.cat(s3, bucket, t.path, sys.stdout.buffer)
        except FileNotFoundError:
            fail(f"{ref_text(t)} has no file {t.path}", EXIT_NOT_FOUND)
