"""Bucket names: how an S3 bucket name maps to a repo, a branch or a snapshot.

`repo` is the repo's default branch, `repo.branch` a branch, and
`repo.<32 hex>` a read-only snapshot at that commit. Names use lowercase
letters, digits and hyphens; anything else is InvalidBucketName.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from s3api.errors import InvalidBucketName
from versioning.ids import is_commit_hex

_PART = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class BucketRef:
    repo: str
    branch: str | None  # None for the default branch, or when the bucket names a snapshot
    commit: str | None  # 32-hex commit id of a snapshot

    @property
    def name(self) -> str:
        if self.commit is not None:
            return f"{self.repo}.{self.commit}"
        return f"{self.repo}.{self.branch}" if self.branch is not None else self.repo


def parse_bucket(name: str) -> BucketRef:
    if not 3 <= len(name) <= 63:
        raise InvalidBucketName(
            f"The specified bucket is not valid: {name!r} must be 3 to 63 characters long.",
            BucketName=name,
        )
    parts = name.split(".")
    if len(parts) > 2 or not all(_PART.match(p) for p in parts):
        raise InvalidBucketName(
            f"The specified bucket is not valid: {name!r}. Use `repo` or `repo.branch` or "
            "`repo.<commit id>`, with lowercase letters, digits and hyphens.",
            BucketName=name,
        )
    if len(parts) == 1:
        return BucketRef(parts[0], None, None)
    repo, rest = parts
    if is_commit_hex(rest):
        return BucketRef(repo, None, rest)
    return BucketRef(repo, rest, None)
