"""Bucket names: how an S3 bucket name maps to a repo, a branch or a snapshot,
and the bucket name of a commit.

`repo` is the repo's default branch, `repo.name` a branch or tag, and
`repo.<commit>` a read-only snapshot at that commit: its full 32-hex id, or
a unique prefix of at least 8 hex digits (a name that is no branch or tag).
Names use lowercase letters, digits and hyphens; anything else is
InvalidBucketName. S3 bucket names are at most 63 characters, so a repo
of up to 30 characters has snapshot buckets with full commit ids, up to 54
with a prefix that fits, and over 54 none: its old versions are read with
`versionId`, or through the control API and the loxo CLI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from s3api.errors import InvalidBucketName
from versioning.ids import is_commit_hex
from versioning.refs import MIN_PREFIX

_PART = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_BUCKET = 63


def commit_bucket(repo: str, commit_hex: str) -> str | None:
    """The bucket that reads (or, for an open commit, writes) `commit_hex` of
    `repo`: `repo.<id>`, shortened to the prefix that fits 63 characters;
    None when not even MIN_PREFIX hex digits fit."""
    room = MAX_BUCKET - len(repo) - 1
    if room < MIN_PREFIX:
        return None
    return f"{repo}.{commit_hex[:room]}"


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


RULE = (
    "Bucket names are `repo`, `repo.branch` (one dot) or `repo.<commit id>`: a repo name "
    "is 3 to 63 characters, a branch or tag name 1 or more, each of lowercase letters, "
    "digits and hyphens, not starting or ending with a hyphen; a branch name of 32 hex "
    "digits reads as a commit id."
)


def _problem(part: str, what: str) -> str | None:
    """What is wrong with one dot-separated part of a bucket name, if anything."""
    if not part:
        return f"the {what} name is empty"
    bad = sorted(
        {c for c in part if not (c.islower() or c.isdigit() or c == "-") or not c.isascii()}
    )
    if bad:
        return f"the {what} name {part!r} has {', '.join(repr(c) for c in bad)}"
    if part.startswith("-") or part.endswith("-"):
        return f"the {what} name {part!r} starts or ends with a hyphen"
    return None


def parse_bucket(name: str) -> BucketRef:
    if not 3 <= len(name) <= 63:
        raise InvalidBucketName(
            f"The specified bucket is not valid: {name!r} is {len(name)} characters long, "
            f"and bucket names are 3 to 63. {RULE}",
            BucketName=name,
        )
    parts = name.split(".")
    if len(parts) > 2:
        raise InvalidBucketName(
            f"The specified bucket is not valid: {name!r} has {len(parts) - 1} dots, and a "
            f"bucket name has at most one, between repo and branch. {RULE}",
            BucketName=name,
        )
    problem = _problem(parts[0], "repo") or (
        _problem(parts[1], "branch") if len(parts) == 2 else None
    )
    if problem is not None or not all(_PART.match(p) for p in parts):
        raise InvalidBucketName(
            f"The specified bucket is not valid: {name!r}: {problem or 'not a valid name'}. {RULE}",
            BucketName=name,
        )
    if len(parts) == 1:
        return BucketRef(parts[0], None, None)
    repo, rest = parts
    if is_commit_hex(rest):
        return BucketRef(repo, None, rest)
    return BucketRef(repo, rest, None)
