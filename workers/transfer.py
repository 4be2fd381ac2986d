"""Datum inputs in and outputs out, through loxo's S3 API with boto3.

Every transfer streams between S3 and a file (no body is held in memory) and
runs several files at once. Clients are path-style and SigV4 (`s3v4`), the
addressing every loxo bucket name (`repo.<commit>`) works with, and are
shared per settings: creating one costs far more than using it, and a boto3
client is thread-safe once made.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from workers.lease import InputFile

FILES_AT_ONCE = 8
CHUNK = 1024 * 1024
TRANSFER = TransferConfig(
    multipart_threshold=8 * 1024 * 1024,
    multipart_chunksize=8 * 1024 * 1024,
    max_concurrency=4,
)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class S3Settings:
    """Where loxo's S3 API is and the keys to sign with."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    verify: bool | str = True  # a CA bundle path for a private TLS certificate


class Cancelled(Exception):
    """The attempt was cancelled (its lease was lost) during a transfer."""


_clients: dict[S3Settings, Any] = {}
_clients_lock = threading.Lock()


def s3_client(settings: S3Settings) -> Any:
    with _clients_lock:
        client = _clients.get(settings)
        if client is None:
            # boto3's default session is not thread-safe while it makes clients.
            client = boto3.session.Session().client(
                "s3",
                endpoint_url=settings.endpoint,
                aws_access_key_id=settings.access_key,
                aws_secret_access_key=settings.secret_key,
                region_name=settings.region,
                verify=settings.verify,
                config=Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path"},
                    max_pool_connections=FILES_AT_ONCE * TRANSFER.max_concurrency,
                    retries={"max_attempts": 5, "mode": "standard"},
                ),
            )
            _clients[settings] = client
        return client


def _each(items: list[T], work: Callable[[T], None], cancel: threading.Event | None = None) -> None:
    """`work` on every item, FILES_AT_ONCE at a time; the first error is raised
    (after the running ones end), and a cancel stops what has not started."""
    if not items:
        return

    def one(item: T) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        work(item)

    if len(items) == 1:
        # Most datums move one file each way: a pool's threads would cost more.
        one(items[0])
        return
    with ThreadPoolExecutor(FILES_AT_ONCE, thread_name_prefix="loxo-transfer") as pool:
        futures = [pool.submit(one, item) for item in items]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            future.cancel()
    # Leaving the pool waited for the running ones: every future is settled.
    for future in futures:
        error = None if future.cancelled() else future.exception()
        if error is not None:
            raise error


def download(
    settings: S3Settings,
    bucket: str,
    files: tuple[InputFile, ...],
    folder: Path,
    cancel: threading.Event | None = None,
) -> None:
    """Every file of `bucket` by key into `folder/<key>`."""
    client = s3_client(settings)

    def fetch(item: InputFile) -> None:
        target = folder / item.key
        if item.key.endswith("/"):  # a folder marker: nothing to write
            target.mkdir(parents=True, exist_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        if item.body is not None:  # sent in the lease
            target.write_bytes(item.body)
            return
        if item.size > TRANSFER.multipart_threshold:
            client.download_file(bucket, item.key, str(target), Config=TRANSFER)
            return
        # One GET for a small file (download_file would HEAD it first: twice
        # the requests for the many-small-files datums pipelines are full of).
        body = client.get_object(Bucket=bucket, Key=item.key)["Body"]
        try:
            with open(target, "wb") as out:
                shutil.copyfileobj(body, out, CHUNK)
        finally:
            body.close()

    _each(list(files), fetch, cancel)


def output_files(root: Path) -> Iterator[tuple[Path, str]]:
    """(file, its key: path relative to root with '/' separators), sorted.
    Symlinks to files count as those files; empty folders count for nothing."""
    for current, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = Path(current) / name
            if path.is_file():
                yield path, path.relative_to(root).as_posix()


@dataclass(frozen=True, slots=True)
class InlineOutput:
    """A small output file sent in the attempt's `complete` call, which
    commits it: one request for the datum instead of a PUT per file."""

    key: str
    body: bytes

    def to_json(self) -> dict[str, str]:
        return {
            "key": self.key,
            "body": base64.b64encode(self.body).decode(),
            "md5": hashlib.md5(self.body).hexdigest(),
        }


def split_outputs(
    root: Path, file_max: int, total_max: int
) -> tuple[list[InlineOutput], list[tuple[Path, str]]]:
    """The output files under `root`: those sent inline (each at most
    `file_max` bytes, together at most `total_max`), and the rest (to upload)."""
    inline: list[InlineOutput] = []
    rest: list[tuple[Path, str]] = []
    budget = total_max
    for path, key in output_files(root):
        size = path.stat().st_size
        if size <= file_max and size <= budget:
            body = path.read_bytes()
            if len(body) == size:  # else it changed under us: upload it instead
                inline.append(InlineOutput(key, body))
                budget -= size
                continue
        rest.append((path, key))
    return inline, rest


def upload(
    settings: S3Settings,
    bucket: str,
    root: Path,
    cancel: threading.Event | None = None,
    files: list[tuple[Path, str]] | None = None,
) -> int:
    """Every file under `root` (or just `files`) to `bucket`, keyed by its
    relative path; how many."""
    client = s3_client(settings)
    if files is None:
        files = list(output_files(root))

    def put(item: tuple[Path, str]) -> None:
        path, key = item
        if path.stat().st_size > TRANSFER.multipart_threshold:
            client.upload_file(str(path), bucket, key, Config=TRANSFER)
            return
        # One PUT for a small file: upload_file starts a transfer manager (its
        # own threads) per call, which costs more than the upload itself.
        with open(path, "rb") as body:
            client.put_object(Bucket=bucket, Key=key, Body=body)

    _each(files, put, cancel)
    return len(files)
