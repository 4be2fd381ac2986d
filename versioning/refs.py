"""Refs: the text that names a commit, as the control API and CLI accept it.

    repo@branch          the branch's head
    repo@tag             the commit the tag names
    repo@<hex>           a commit, by its id or a unique prefix of >= 8 hex digits
    ...~N                the Nth first-parent ancestor (~ alone: ~1)
    ...^  ...^N          the first (Nth) parent; ^^ is ~2

A bare `repo` means its default branch. A name is looked up as a branch,
then a tag (the two share one namespace: control.py refuses a tag named like
a branch and the reverse), then as a commit id prefix; names that could be
mistaken for whole commit ids are refused at creation
(names.check_ref_name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from versioning import errors
from versioning.db import Database
from versioning.ids import CommitId

MIN_PREFIX = 8
_HEX = re.compile(r"^[0-9a-f]+$")
# Repo and branch names (repository.NAME), of which hex prefixes are a subset.
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_STEP = re.compile(r"~(\d*)|\^(\d*)")


@dataclass(frozen=True, slots=True)
class Ref:
    repo: str
    name: str | None  # None: the repo's default branch
    # Parent steps to take from what `name` resolves to: (parent index, count).
    # `~3` is (0, 3); `^2` is (1, 1); `^` is (0, 1).
    steps: tuple[tuple[int, int], ...] = ()


def parse_ref(text: str) -> Ref:
    """Parse `repo[@name][~N|^N]...`; InvalidRef with what was expected."""
    repo, at, rest = text.partition("@")
    if not repo or (at and not rest):
        raise errors.InvalidRef(
            f"invalid ref {text!r}: expected REPO, REPO@BRANCH or REPO@COMMIT, "
            "optionally followed by ~N or ^"
        )
    cut = min((i for i in (rest.find("~"), rest.find("^")) if i >= 0), default=len(rest))
    name, suffix = rest[:cut], rest[cut:]
    if at and not name:
        raise errors.InvalidRef(f"invalid ref {text!r}: nothing between '@' and {suffix[:1]!r}")
    if not at:
        cut = min((i for i in (repo.find("~"), repo.find("^")) if i >= 0), default=len(repo))
        repo, suffix = repo[:cut], repo[cut:]
    for part, what in ((repo, "repo"), (name, "branch or commit")):
        if part and not _NAME.match(part):
            raise errors.InvalidRef(
                f"invalid ref {text!r}: {part!r} is not a {what} name (lowercase letters, "
                "digits and hyphens)"
            )
    steps: list[tuple[int, int]] = []
    pos = 0
    while pos < len(suffix):
        m = _STEP.match(suffix, pos)
        if m is None:
            raise errors.InvalidRef(
                f"invalid ref {text!r}: after the name only ~N and ^N may follow "
                f"(at {suffix[pos:]!r})"
            )
        if m.group(0).startswith("~"):
            steps.append((0, int(m.group(1)) if m.group(1) else 1))
        else:
            nth = int(m.group(2)) if m.group(2) else 1
            if nth < 1:
                raise errors.InvalidRef(f"invalid ref {text!r}: ^0 names no parent")
            steps.append((nth - 1, 1))
        pos = m.end()
    return Ref(repo, name or None, tuple(steps))


async def resolve(db: Database, ref: Ref) -> CommitId:
    """The commit a ref names. RefNotFound when nothing matches (or an
    ancestor step walks past the first commit), AmbiguousRef when a hex
    prefix matches several commits."""
    repo = await db.repos.get_repo(ref.repo)
    name = ref.name or repo.default_branch
    commit = await _named(db, ref.repo, name)
    for parent_index, count in ref.steps:
        for _ in range(count):
            parents = (await db.objects.get_commit(commit)).parents
            if parent_index >= len(parents):
                raise errors.RefNotFound(
                    f"{ref.repo}@{name}: commit {commit.hex()} has no parent #{parent_index + 1}"
                )
            commit = parents[parent_index]
    return commit


async def _named(db: Database, repo: str, name: str) -> CommitId:
    try:
        head = (await db.refs.get_branch(repo, name)).head
    except errors.BranchNotFound:
        pass
    else:
        if head is None:
            raise errors.RefNotFound(f"{repo}@{name}: the branch has no commits yet")
        return head
    tag = await db.refs.get_tag(repo, name)
    if tag is not None:
        return tag.commit
    if not _HEX.match(name):
        raise errors.RefNotFound(f"{repo}@{name}: no such branch or tag")
    if len(name) < MIN_PREFIX:
        raise errors.RefNotFound(
            f"{repo}@{name}: no such branch, and a commit prefix needs at least "
            f"{MIN_PREFIX} hex digits"
        )
    found = await db.objects.commits_with_prefix(repo, name, limit=2)
    if not found:
        raise errors.RefNotFound(f"{repo}@{name}: no branch or commit matches")
    if len(found) > 1:
        raise errors.AmbiguousRef(
            f"{repo}@{name}: the prefix matches several commits "
            f"({', '.join(c.hex() for c in found)}, ...); give more digits"
        )
    return found[0]
