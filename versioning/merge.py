"""Three-way merges and reverts at path level, over trees.

A path is a unit: its entry on each side is compared with the merge base's.
A path changed on one side only takes that side's entry; changed on both to
the same object, it is kept; changed on both differently (including changed
on one side and deleted on the other) it is a conflict, settled by a
strategy (`ours`: the target's entry stays, `theirs`: the source's wins) or
reported with nothing written. Two entries are the same object when their
bodies and attributes (tags included) are equal, whatever commit wrote them.
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from versioning import tree
from versioning.ids import CommitId
from versioning.model import Commit, ObjectEntry
from versioning.tree import NodeSource, Root


class Strategy(StrEnum):
    OURS = "ours"
    THEIRS = "theirs"


@dataclass(frozen=True, slots=True)
class Conflict:
    path: str
    # "both-changed", "deleted-in-source" or "deleted-in-target"
    kind: str


@dataclass(slots=True)
class Plan:
    """The edits that carry one side's changes over to the other."""

    edits: dict[str, ObjectEntry | None] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)


def same_object(a: ObjectEntry | None, b: ObjectEntry | None) -> bool:
    if a is None or b is None:
        return a is b
    return (
        a.content == b.content
        and a.content_type == b.content_type
        and a.metadata == b.metadata
        and a.headers == b.headers
        and a.tags == b.tags
    )


def _conflict(path: str, ours: ObjectEntry | None, theirs: ObjectEntry | None) -> Conflict:
    if theirs is None:
        return Conflict(path, "deleted-in-source")
    if ours is None:
        return Conflict(path, "deleted-in-target")
    return Conflict(path, "both-changed")


async def three_way(
    src: NodeSource, base: Root, ours: Root, theirs: Root, strategy: Strategy | None = None
) -> Plan:
    """Edits to apply on `ours` (the target) to merge `theirs` (the source)
    into it, given their merge base; conflicts resolved by `strategy`, or
    listed when it is None."""
    plan = Plan()
    # A path rewritten with the same object it had is not a change.
    our_changes = {
        key: new async for key, old, new in tree.diff(src, base, ours) if not same_object(old, new)
    }
    async for key, old, their in tree.diff(src, base, theirs):
        if same_object(old, their):
            continue
        if key not in our_changes:
            plan.edits[key] = their
            continue
        our = our_changes[key]
        if same_object(our, their):
            continue
        plan.conflicts.append(_conflict(key, our, their))
        if strategy is Strategy.THEIRS:
            plan.edits[key] = their
    return plan


async def revert(src: NodeSource, parent: Root, commit: Root, head: Root) -> Plan:
    """Edits to apply on `head` that undo what `commit` changed relative to
    `parent`. A path changed again since `commit` is a conflict."""
    plan = Plan()
    async for key, before, after in tree.diff(src, parent, commit):
        if same_object(before, after):
            continue  # rewritten with the same object: nothing to undo
        now = await tree.lookup(src, head, key)
        if same_object(now, before):
            continue  # already as it was before the commit
        if not same_object(now, after):
            plan.conflicts.append(_conflict(key, now, before))
            continue
        plan.edits[key] = before
    return plan


async def merge_base(
    get_commit: Callable[[CommitId], Awaitable[Commit]], a: CommitId, b: CommitId
) -> CommitId | None:
    """A best common ancestor of `a` and `b` (None when they share no history):
    both histories are walked newest first until a commit is reached from both
    sides; it is the newest such commit."""
    if a == b:
        return a
    flags: dict[CommitId, int] = {a: 1, b: 2}
    heap: list[tuple[int, CommitId]] = []
    for cid in (a, b):
        heapq.heappush(heap, (-(await get_commit(cid)).time, cid))
    queued = {a, b}
    while heap:
        _, cid = heapq.heappop(heap)
        queued.discard(cid)
        mark = flags[cid]
        if mark == 3:
            return cid
        for parent in (await get_commit(cid)).parents:
            flags[parent] = flags.get(parent, 0) | mark
            if parent not in queued:
                heapq.heappush(heap, (-(await get_commit(parent)).time, parent))
                queued.add(parent)
    return None
