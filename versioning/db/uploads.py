"""Multipart uploads in progress and their parts.

Parts point at contents already stored durably; nothing is visible until the
commit statement consumes the upload (commit_chain.py), in the same
statement that moves the branch head.
"""

from __future__ import annotations

from typing import Protocol

import asyncpg

from versioning import errors
from versioning.ids import CommitId, ContentId
from versioning.model import Completion, Upload, UploadPart, pack, unpack


class UploadStore(Protocol):
    async def create_upload(self, record: Upload) -> None: ...
    async def get_upload(self, upload_id: str) -> Upload: ...
    async def put_part(self, upload_id: str, part: UploadPart) -> None: ...
    async def list_parts(self, upload_id: str) -> list[UploadPart]: ...
    async def delete_upload(self, upload_id: str) -> bool: ...
    async def list_uploads(
        self,
        repo: str,
        branch: str,
        prefix: str,
        after_key: str,
        after_id: str,
        limit: int,
        skip_key_prefix: bool = False,
    ) -> list[Upload]: ...
    async def expire_uploads(self, idle_since: int) -> list[str]: ...
    async def get_completion(self, upload_id: str) -> Completion | None: ...
    async def forget_completions(self, before: int) -> int: ...


class PgUploads:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create_upload(self, record: Upload) -> None:
        await self.pool.execute(
            "INSERT INTO uploads "
            "(id, repo, branch, key, created, attrs, checksum_algorithm, checksum_type) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            record.id,
            record.repo,
            record.branch,
            record.key,
            record.created,
            record.attrs,
            record.checksum_algorithm,
            record.checksum_type,
        )

    async def get_upload(self, upload_id: str) -> Upload:
        row = await self.pool.fetchrow(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE id = $1", upload_id
        )
        if row is None:
            raise errors.UploadNotFound(upload_id)
        return Upload(**dict(row))

    async def put_part(self, upload_id: str, part: UploadPart) -> None:
        try:
            await self.pool.execute(
                "INSERT INTO upload_parts "
                "(upload_id, part_number, content, size, md5, created, checksums) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (upload_id, part_number) "
                "DO UPDATE SET content = EXCLUDED.content, size = EXCLUDED.size, "
                "md5 = EXCLUDED.md5, created = EXCLUDED.created, checksums = EXCLUDED.checksums",
                upload_id,
                part.part_number,
                part.content,
                part.size,
                part.md5,
                part.created,
                pack(sorted(part.checksums.items())) if part.checksums else None,
            )
        except asyncpg.ForeignKeyViolationError:
            raise errors.UploadNotFound(upload_id) from None

    async def list_parts(self, upload_id: str) -> list[UploadPart]:
        rows = await self.pool.fetch(
            "SELECT part_number, content, size, md5, created, checksums FROM upload_parts "
            "WHERE upload_id = $1 ORDER BY part_number",
            upload_id,
        )
        return [
            UploadPart(
                r["part_number"],
                ContentId(r["content"]),
                r["size"],
                r["md5"],
                r["created"],
                {k: v for k, v in unpack(r["checksums"])} if r["checksums"] else {},
            )
            for r in rows
        ]

    async def delete_upload(self, upload_id: str) -> bool:
        status = await self.pool.execute("DELETE FROM uploads WHERE id = $1", upload_id)
        return bool(status == "DELETE 1")

    async def list_uploads(
        self,
        repo: str,
        branch: str,
        prefix: str,
        after_key: str,
        after_id: str,
        limit: int,
        skip_key_prefix: bool = False,
    ) -> list[Upload]:
        """Uploads of a branch whose key starts with `prefix`, in (key, id) byte
        order, after (after_key, after_id): keys greater than after_key, and
        uploads of after_key whose id is greater than after_id. With
        `skip_key_prefix`, every key starting with after_key is skipped too."""
        rows = await self.pool.fetch(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads "
            "WHERE repo = $1 AND branch = $2 AND starts_with(key, $3) "
            'AND (key COLLATE "C" > $4 OR (key = $4 AND id COLLATE "C" > $5)) '
            "AND NOT ($7 AND starts_with(key, $4)) "
            'ORDER BY key COLLATE "C", id COLLATE "C" LIMIT $6',
            repo,
            branch,
            prefix,
            after_key,
            after_id,
            limit,
            skip_key_prefix,
        )
        return [Upload(**dict(r)) for r in rows]

    async def get_completion(self, upload_id: str) -> Completion | None:
        row = await self.pool.fetchrow(
            "SELECT id, repo, branch, key, commit_id, completed FROM completed_uploads "
            "WHERE id = $1",
            upload_id,
        )
        if row is None:
            return None
        return Completion(
            row["id"],
            row["repo"],
            row["branch"],
            row["key"],
            CommitId(row["commit_id"]),
            row["completed"],
        )

    async def forget_completions(self, before: int) -> int:
        """Forget the uploads completed before `before`; how many."""
        status = await self.pool.execute(
            "DELETE FROM completed_uploads WHERE completed < $1", before
        )
        return int(status.split()[-1])

    async def expire_uploads(self, idle_since: int) -> list[str]:
        """Delete the uploads (and, by cascade, their parts rows) that have seen no
        activity (creation or a part) since `idle_since`; returns their ids."""
        rows = await self.pool.fetch(
            "DELETE FROM uploads u WHERE u.created < $1 AND NOT EXISTS "
            "(SELECT 1 FROM upload_parts p WHERE p.upload_id = u.id AND p.created >= $1) "
            "RETURNING u.id",
            idle_since,
        )
        return [r["id"] for r in rows]


_UPLOAD_COLUMNS = "id, repo, branch, key, created, attrs, checksum_algorithm, checksum_type"
