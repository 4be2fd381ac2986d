"""Files in and out of loxo through its S3 API: put, get, ls, cat.

Transfers use boto3's transfer manager (multipart above 8 MiB, parts in
parallel) and several files at once. Putting a directory goes through an open
commit, so the whole directory lands as ONE commit or, on any failure, not at
all. A directory's contents land under the destination path, as with
`aws s3 sync` (PATH/f.csv, not PATH/dir/f.csv).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from gateway.client.api import Client, LoxoError
from gateway.client.models import plural

FILES_AT_ONCE = 8
TRANSFER = TransferConfig(
    multipart_threshold=8 * 1024 * 1024,
    multipart_chunksize=8 * 1024 * 1024,
    max_concurrency=4,
)
# Called with the number of bytes moved since the last call.
Progress = Callable[[int], None]


class UnsafeKeys(ValueError):
    """Object keys that cannot be written as files under the target folder."""


class Interrupted(Exception):
    """The user interrupted a put through an open commit (Ctrl-C): what
    happened to the open commit. `aborted` False: aborting it failed too."""

    def __init__(self, repo: str, open_commit: str, branch: str, aborted: bool) -> None:
        super().__init__(f"interrupted: open commit {repo}@{open_commit}")
        self.repo = repo
        self.open_commit = open_commit
        self.branch = branch
        self.aborted = aborted


@dataclass(frozen=True, slots=True)
class Listed:
    path: str
    is_dir: bool
    size: int
    modified: Any  # datetime, None for a folder


def s3_client(endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1") -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        config=Config(
            s3={"addressing_style": "path"},
            max_pool_connections=FILES_AT_ONCE * TRANSFER.max_concurrency,
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )


def bucket_for(api: Client, repo: str, ref: str | None) -> str:
    """The S3 bucket that reads `repo@ref` as one snapshot: `repo.<commit
    id>` of the commit the ref names now, so a listing and the downloads
    after it see the same commit even while the branch moves. An empty
    branch (no commit yet) is read through its own bucket. (None: the
    repo's default branch.)"""
    try:
        commit = api.inspect(repo, ref)
    except LoxoError as err:
        if err.code != "ref_not_found":
            raise
        if ref is None:
            return repo  # the default branch, with no commit yet
        api.get_branch(repo, ref)  # branch_not_found unless it is an empty branch
        return f"{repo}.{ref}"
    if commit.bucket is None:
        # The repo's name leaves no room for a snapshot bucket: a branch or
        # tag is read through its own bucket instead (not pinned to one
        # commit while a branch moves).
        if ref is None:
            return repo
        if all(c.isalnum() or c == "-" for c in ref):  # a name, not `main~2` or `^`
            name = f"{repo}.{ref}"
            if len(name) <= 63:
                return name
        raise LoxoError(
            400,
            "no_snapshot_bucket",
            f"repo {repo}'s name is too long for snapshot buckets (repo.<commit> must fit 63 "
            "characters, so at most 54); read it with a branch or tag name",
            {},
        )
    return commit.bucket


def local_files(root: Path) -> Iterator[tuple[Path, str]]:
    """(file, its path relative to root with '/' separators), sorted."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            full = Path(folder) / name
            yield full, full.relative_to(root).as_posix()


def join_key(prefix: str, rel: str) -> str:
    if not prefix:
        return rel
    return prefix.rstrip("/") + "/" + rel


def file_key(local: Path, path: str) -> str:
    """Where a single file goes: PATH itself, or PATH/name when PATH is empty
    or ends with '/'."""
    if not path or path.endswith("/"):
        return path + local.name
    return path


def upload_files(
    s3: Any, bucket: str, files: list[tuple[Path, str]], progress: Progress | None = None
) -> None:
    def one(item: tuple[Path, str]) -> None:
        local, key = item
        size = local.stat().st_size
        if size >= TRANSFER.multipart_threshold:
            s3.upload_file(str(local), bucket, key, Config=TRANSFER, Callback=progress)
            return
        # One PutObject: the transfer manager's per-call setup (a thread pool
        # per file) costs more than a small file's upload.
        with local.open("rb") as f:
            s3.put_object(Bucket=bucket, Key=key, Body=f)
        if progress is not None:
            progress(size)

    pool = ThreadPoolExecutor(FILES_AT_ONCE)
    try:
        for _ in pool.map(one, files):
            pass
    finally:
        # On an error or Ctrl-C, files not yet started are not started.
        pool.shutdown(wait=True, cancel_futures=True)


def put_directory(
    api: Client,
    s3: Any,
    root: Path,
    repo: str,
    branch: str,
    path: str,
    message: str,
    progress: Progress | None = None,
) -> str | None:
    """Upload a directory's files under `path` as ONE commit (see put_files)."""
    files = [(f, join_key(path, rel)) for f, rel in local_files(root)]
    return put_files(api, s3, files, repo, branch, message, progress)


def put_files(
    api: Client,
    s3: Any,
    files: list[tuple[Path, str]],
    repo: str,
    branch: str,
    message: str,
    progress: Progress | None = None,
) -> str | None:
    """Upload (file, key) pairs as ONE commit with `message`, through an open
    commit; the commit id (None when it changed nothing). On any failure the
    open commit is aborted and the branch is untouched."""
    opened = api.start_commit(repo, branch)
    try:
        upload_files(s3, opened.bucket, files, progress)
        return api.finish_commit(repo, opened.id, message)
    except LoxoError:
        # The server refused to finish (or an upload): nothing is committed.
        api.abort_commit(repo, opened.id)
        raise
    except KeyboardInterrupt:
        try:
            api.abort_commit(repo, opened.id)
        except (LoxoError, KeyboardInterrupt):
            raise Interrupted(repo, opened.id, branch, aborted=False) from None
        raise Interrupted(repo, opened.id, branch, aborted=True) from None
    except BaseException:
        # An upload failed: a finish may be under way only if it was sent,
        # and then abort is refused harmlessly.
        with contextlib.suppress(LoxoError):
            api.abort_commit(repo, opened.id)
        raise


def head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """HeadObject's answer, or None when there is no such object."""
    try:
        return s3.head_object(Bucket=bucket, Key=key)  # type: ignore[no-any-return]
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _as_object(s3: Any, bucket: str, path: str) -> dict[str, Any] | None:
    """The object `path` names, when it names one rather than a folder."""
    return head(s3, bucket, path) if path and not path.endswith("/") else None


def walk_keys(s3: Any, bucket: str, prefix: str) -> Iterator[tuple[str, int]]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        for item in page.get("Contents", []):
            yield item["Key"], item["Size"]


@dataclass(frozen=True, slots=True)
class Job:
    key: str
    size: int
    target: Path


def plan_download(s3: Any, bucket: str, path: str, local: Path) -> list[Job]:
    """What downloading one object, or every object under the folder `path`,
    to `local` writes (a folder's contents land inside `local`). Listed once,
    before any byte moves, so unsafe keys refuse the whole download."""
    obj = _as_object(s3, bucket, path)
    if obj is not None:
        target = local / Path(path).name if local.is_dir() else local
        return [Job(path, int(obj["ContentLength"]), target)]
    prefix = path if not path or path.endswith("/") else path + "/"
    keys = list(walk_keys(s3, bucket, prefix))
    if not keys:
        raise FileNotFoundError(f"nothing at {path or '/'}")
    jobs: list[Job] = []
    unsafe: list[str] = []
    for key, size in keys:
        if key.endswith("/"):
            continue  # a folder marker object, as consoles create: no file
        parts = key[len(prefix) :].split("/")
        if any(part in ("", ".", "..") for part in parts):
            unsafe.append(key)  # would land outside LOCAL, or nowhere
            continue
        jobs.append(Job(key, size, local.joinpath(*parts)))
    if unsafe:
        raise UnsafeKeys(
            f"refusing to download: {plural(len(unsafe), 'key')} would not map to a file "
            f"inside {local} (empty, '.' or '..' path segments), e.g. {unsafe[0]!r}; "
            "nothing was written"
        )
    return jobs


def download(s3: Any, bucket: str, jobs: list[Job], progress: Progress | None = None) -> None:
    """Run planned downloads, several files at once."""
    for job in jobs:
        job.target.parent.mkdir(parents=True, exist_ok=True)

    def one(job: Job) -> None:
        if job.size >= TRANSFER.multipart_threshold:
            s3.download_file(bucket, job.key, str(job.target), Config=TRANSFER, Callback=progress)
            return
        body = s3.get_object(Bucket=bucket, Key=job.key)["Body"]
        with job.target.open("wb") as f:
            for piece in body.iter_chunks(1024 * 1024):
                f.write(piece)
        if progress is not None:
            progress(job.size)

    with ThreadPoolExecutor(FILES_AT_ONCE) as pool:
        for _ in pool.map(one, jobs):
            pass


def listing(s3: Any, bucket: str, path: str) -> Iterator[Listed]:
    """A folder's entries, one level deep (folders end with '/')."""
    prefix = path if not path or path.endswith("/") else path + "/"
    obj = _as_object(s3, bucket, path)
    if obj is not None:
        yield Listed(path, False, int(obj["ContentLength"]), obj["LastModified"])
        return
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, Delimiter="/"
    )
    for page in pages:
        for common in page.get("CommonPrefixes", []):
            yield Listed(common["Prefix"], True, 0, None)
        for item in page.get("Contents", []):
            yield Listed(item["Key"], False, item["Size"], item["LastModified"])


def cat(s3: Any, bucket: str, path: str, out: BinaryIO) -> None:
    """Write an object's bytes to `out`; FileNotFoundError when there is none."""
    try:
        body = s3.get_object(Bucket=bucket, Key=path)["Body"]
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "NoSuchKey":
            raise FileNotFoundError(f"no file {path}") from None
        raise
    for piece in body.iter_chunks(1024 * 1024):
        out.write(piece)
    out.flush()
