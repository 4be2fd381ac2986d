"""Names: what a repo, branch or tag may be called, and the default branch.

Names are lowercase letters, digits and hyphens, so each is also a DNS label
and a URL path segment without escaping. A ref name that is 32 hex digits
would read as a commit id, so it is refused.
"""

from __future__ import annotations

import os
import re

from versioning import errors
from versioning.ids import VersionId, is_commit_hex

NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
DEFAULT_BRANCH = "main"
MIN_REPO = 3
MAX_REPO = 63
# A repo's refs are addressed as `repo.<ref>` (S3 buckets, DNS names), so a
# qualified ref name is at most one DNS label's 63 characters.
MAX_QUALIFIED = 63


REPO_RULE = (
    f"repo names are {MIN_REPO} to {MAX_REPO} characters of lowercase letters, digits and "
    "hyphens, not starting or ending with a hyphen"
)
REF_RULE = (
    "branch and tag names are lowercase letters, digits and hyphens, not starting or "
    "ending with a hyphen (and not 32 hex digits, which read as a commit id)"
)


def check_repo_name(name: str) -> None:
    if not NAME.match(name) or not MIN_REPO <= len(name) <= MAX_REPO:
        raise errors.InvalidName(f"invalid repo name {name!r}: {REPO_RULE}")


def check_ref_name(name: str, repo: str = "") -> None:
    """A branch or tag name (they share one namespace)."""
    if not NAME.match(name):
        raise errors.InvalidName(f"invalid branch or tag name {name!r}: {REF_RULE}")
    if repo and len(repo) + 1 + len(name) > MAX_QUALIFIED:
        raise errors.InvalidName(
            f"branch or tag name {name!r} is too long for repo {repo}: the bucket "
            f"{repo}.{name} would be over {MAX_QUALIFIED} characters"
        )
    if is_commit_hex(name):
        raise errors.InvalidName(
            f"invalid branch or tag name {name!r}: 32 hex digits would read as a commit id"
        )


def new_version() -> VersionId:
    """A fresh object version id: unique per write, mapped to its commit."""
    return VersionId(os.urandom(16))
