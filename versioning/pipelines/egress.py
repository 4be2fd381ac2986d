"""Egress: after a job succeeds, its output commit is copied to an S3 URL
(`egress.URL` in the spec), so downstream systems that read a plain bucket
see each output.

The URL is `s3://BUCKET[/PREFIX][?endpoint=URL&region=REGION]`: `endpoint`
points at any S3-compatible store (MinIO, moto, Ceph); credentials come from
the server's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or any
source boto's chain knows), never from the spec, which anyone may read.

What is copied follows the change: the tree diff from the last egressed
output to the new one (puts and deletes). The first egress, or one after a
failed egress, syncs in full: every object is put, and objects under the
prefix that the output does not hold are deleted. Bodies stream in parts of
at most PART_SIZE bytes; nothing is held whole in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aioboto3
from botocore.config import Config

from versioning import commit_log, tree
from versioning.db import Database
from versioning.db.jobs import JobRow
from versioning.ids import CommitId
from versioning.model import ObjectEntry
from versioning.pipelines.spec import PipelineSpec

PART_SIZE = 8 * 1024 * 1024
CONCURRENCY = 8


class EgressError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Target:
    bucket: str
    prefix: str
    endpoint: str | None
    region: str | None


def parse_url(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise EgressError(f"egress URL must look like s3://bucket/prefix, not {url!r}")
    query = parse_qs(parts.query)
    prefix = parts.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return Target(
        parts.netloc,
        prefix,
        query.get("endpoint", [None])[0],
        query.get("region", [None])[0],
    )


class Egress:
    """The job-success hook of `Jobs.on_success`."""

    def __init__(self, db: Database, reader: Any) -> None:
        self.db = db
        self.reader = reader  # Versioning: reader(entry, repo) streams a body

    async def __call__(self, job: JobRow, spec: PipelineSpec) -> None:
        if spec.egress is None or job.output_commit is None:
            return
        target = parse_url(spec.egress.url)
        previous = await self._last_egressed(job)
        stats = await self.copy(job.pipeline, previous, job.output_commit, target)
        await self.db.jobs.set_job_stats(
            job.id, {"egress": {"url": spec.egress.url, "commit": job.output_commit.hex(), **stats}}
        )

    async def _last_egressed(self, job: JobRow) -> CommitId | None:
        for earlier in await self.db.jobs.list_jobs(job.pipeline, "success", job.created, 20):
            egressed = earlier.stats.get("egress")
            if isinstance(egressed, dict) and egressed.get("commit"):
                return CommitId(bytes.fromhex(str(egressed["commit"])))
            if "egress_error" in earlier.stats:
                return None
        return None

    async def copy(
        self, repo: str, before: CommitId | None, after: CommitId, target: Target
    ) -> dict[str, int]:
        session = aioboto3.Session()
        config = Config(
            s3={"addressing_style": "path" if target.endpoint else "auto"},
            retries={"max_attempts": 5, "mode": "standard"},
        )
        async with session.client(
            "s3", endpoint_url=target.endpoint, region_name=target.region, config=config
        ) as s3:
            new_root = commit_log.tree_of(await self.db.objects.get_commit(after))
            puts: list[tuple[str, ObjectEntry]] = []
            deletes: list[str] = []
            if before is not None:
                old_root = commit_log.tree_of(await self.db.objects.get_commit(before))
                async for change in commit_log.changes(self.db.objects, old_root, new_root):
                    if change.after is None:
                        deletes.append(change.path)
                    else:
                        puts.append((change.path, change.after))
            else:
                held: set[str] = set()
                async for key, entry in tree.iterate(self.db.objects, new_root, ""):
                    puts.append((key, entry))
                    held.add(key)
                async for key in _remote_keys(s3, target):
                    if key not in held:
                        deletes.append(key)
            gate = asyncio.Semaphore(CONCURRENCY)

            async def put(key: str, entry: ObjectEntry) -> None:
                async with gate:
                    await self._put(s3, target, repo, key, entry)

            await asyncio.gather(*(put(k, e) for k, e in puts))
            for i in range(0, len(deletes), 1000):
                batch = deletes[i : i + 1000]
                await s3.delete_objects(
                    Bucket=target.bucket,
                    Delete={"Objects": [{"Key": target.prefix + k} for k in batch]},
                )
        return {"put": len(puts), "deleted": len(deletes), "full": int(before is None)}

    async def _put(self, s3: Any, target: Target, repo: str, key: str, entry: ObjectEntry) -> None:
        name = target.prefix + key
        extra = {"ContentType": entry.content_type, "Metadata": dict(entry.metadata)}
        pieces = _parts((await self.reader.reader(entry, repo)).read())
        if entry.size <= PART_SIZE:
            body = b"".join([p async for p in pieces])
            await s3.put_object(Bucket=target.bucket, Key=name, Body=body, **extra)
            return
        upload = await s3.create_multipart_upload(Bucket=target.bucket, Key=name, **extra)
        uid = upload["UploadId"]
        try:
            done = []
            number = 0
            async for part in pieces:
                number += 1
                answer = await s3.upload_part(
                    Bucket=target.bucket, Key=name, UploadId=uid, PartNumber=number, Body=part
                )
                done.append({"PartNumber": number, "ETag": answer["ETag"]})
            await s3.complete_multipart_upload(
                Bucket=target.bucket, Key=name, UploadId=uid, MultipartUpload={"Parts": done}
            )
        except BaseException:
            await s3.abort_multipart_upload(Bucket=target.bucket, Key=name, UploadId=uid)
            raise


async def _parts(source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The stream regrouped into pieces of exactly PART_SIZE (the last shorter)."""
    buffer = bytearray()
    async for piece in source:
        buffer += piece
        while len(buffer) >= PART_SIZE:
            yield bytes(buffer[:PART_SIZE])
            del buffer[:PART_SIZE]
    if buffer:
        yield bytes(buffer)


async def _remote_keys(s3: Any, target: Target) -> AsyncIterator[str]:
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=target.bucket, Prefix=target.prefix):
        for item in page.get("Contents", []):
            yield item["Key"][len(target.prefix) :]
