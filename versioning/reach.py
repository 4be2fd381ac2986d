"""Reachability: everything the roots (branch heads, young commits, open
uploads) keep alive, found by walking commits, trees and history indexes.

Shared by garbage collection (what to keep) and fsck (what to verify). The
walk visits each commit and each tree node once however many commits share
it, so its cost is the number of distinct nodes, not commits x tree size.

Purged bodies (purge.py) are not reached from the repos that purged them: a
leaf met from such a repo skips them. Tree nodes are shared across repos, so
the nodes of a repo with purges are visited once for that repo and once for
all the other repos (its cost is then the distinct nodes per such repo).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import cast

from versioning.catalog import BATCH, Catalog
from versioning.history import is_delete_marker
from versioning.ids import CommitId, ContentId, NodeId
from versioning.model import Commit, ObjectEntry
from versioning.tree import ChildRef, Node


@dataclass(frozen=True, slots=True)
class Place:
    """Where a content was first found: a path in a commit of a repo."""

    repo: str
    commit: CommitId
    path: str


@dataclass(slots=True)
class Reached:
    commits: set[CommitId] = field(default_factory=set)
    nodes: set[NodeId] = field(default_factory=set)
    contents: set[ContentId] = field(default_factory=set)
    # Only with track_places: one place per content, for fsck's report.
    places: dict[ContentId, Place] = field(default_factory=dict)
    # Problems met on the way: (what, id hex, detail).
    missing_commits: list[CommitId] = field(default_factory=list)
    # A commit that named each parent reached (the first one met).
    child_of: dict[CommitId, CommitId] = field(default_factory=dict)
    missing_nodes: list[tuple[NodeId, CommitId]] = field(default_factory=list)
    bad_nodes: list[tuple[NodeId, CommitId, str]] = field(default_factory=list)
    bad_commits: list[tuple[CommitId, str]] = field(default_factory=list)
    # Purged bodies met in the repos that purged them (not in `contents`
    # unless another repo reached them too).
    purged: set[ContentId] = field(default_factory=set)

    @property
    def complete(self) -> bool:
        """Whether every reachable tree was found and decoded: gc must not sweep
        on an incomplete mark, since what a missing node names is unknown.

        A missing commit does not count: deleting a repo deletes its commits at
        once, so a walk racing with that finds heads and parents gone, and
        what those commits reached is garbage then anyway. fsck tells real
        losses from such races by looking again (see fsck.py)."""
        return not (self.missing_nodes or self.bad_nodes)


async def walk(
    catalog: Catalog,
    roots: Iterable[CommitId],
    extra_contents: Iterable[ContentId] = (),
    *,
    verify: bool = False,
    track_places: bool = False,
    progress: Callable[[str], None] | None = None,
    purged: Mapping[str, Set[ContentId]] | None = None,
) -> Reached:
    """Everything reachable from `roots`. With `verify`, each commit's and
    node's id is checked against the hash of its stored bytes (fsck).
    `purged` maps a repo to the bodies purged from it: its entries naming
    them reach nothing."""
    erased_in = {repo: ids for repo, ids in (purged or {}).items() if ids}
    # With purges, a node is visited once per (node, group): the group is the
    # repo when it has purges, else "" (all the others together).
    seen: set[tuple[NodeId, str]] = set()

    def group(repo: str) -> str:
        return repo if repo in erased_in else ""

    def visited(nid: NodeId, repo: str) -> bool:
        return (nid, group(repo)) in seen if erased_in else nid in out.nodes

    out = Reached()
    out.contents.update(extra_contents)
    # (node, the commit it was reached from, repo, whether it is a history index)
    pending_nodes: list[tuple[NodeId, CommitId, str, bool]] = []
    frontier = list(dict.fromkeys(roots))
    while frontier:
        batch, frontier = frontier[:BATCH], frontier[BATCH:]
        batch = [c for c in batch if c not in out.commits]
        if not batch:
            continue
        out.commits.update(batch)
        found = await catalog.commits(batch)
        got = {cid for cid, _, _ in found}
        out.missing_commits.extend(c for c in batch if c not in got)
        histories = await catalog.history_roots(batch)
        for cid, repo, data in found:
            try:
                commit = Commit.decode(data)
            except (ValueError, TypeError, IndexError) as exc:
                out.bad_commits.append((cid, f"undecodable: {exc}"))
                continue
            if verify and commit.id != cid:
                out.bad_commits.append((cid, "stored bytes do not hash to the commit id"))
            for parent in commit.parents:
                if parent not in out.commits:
                    frontier.append(parent)
                    out.child_of.setdefault(parent, cid)
            if commit.tree:
                pending_nodes.append((NodeId(commit.tree), cid, repo, False))
            if cid in histories:
                pending_nodes.append((histories[cid], cid, repo, True))
    if progress:
        progress(f"{len(out.commits)} commits")
    while pending_nodes:
        batch_nodes, pending_nodes = pending_nodes[:BATCH], pending_nodes[BATCH:]
        fresh: dict[tuple[NodeId, str], tuple[CommitId, str, bool]] = {}
        for nid, cid, repo, is_history in batch_nodes:
            if not visited(nid, repo) and (nid, group(repo)) not in fresh:
                fresh[(nid, group(repo))] = (cid, repo, is_history)
        if not fresh:
            continue
        if erased_in:
            seen.update(fresh)
        out.nodes.update(nid for nid, _ in fresh)
        stored = await catalog.nodes(list({nid for nid, _ in fresh}))
        for (nid, _), (cid, repo, is_history) in fresh.items():
            erased = erased_in.get(repo, frozenset())
            node_data = stored.get(nid)
            if node_data is None:
                out.missing_nodes.append((nid, cid))
                continue
            try:
                node = Node.decode(node_data)
            except (ValueError, TypeError, IndexError, KeyError) as exc:
                out.bad_nodes.append((nid, cid, f"undecodable: {exc}"))
                continue
            if verify and node.id != nid:
                out.bad_nodes.append((nid, cid, "stored bytes do not hash to the node id"))
            if node.level > 0:
                for ref in cast("tuple[ChildRef, ...]", node.values):
                    if not visited(ref.node, repo):
                        pending_nodes.append((ref.node, cid, repo, is_history))
                continue
            for key, entry in zip(
                node.keys, cast("tuple[ObjectEntry, ...]", node.values), strict=True
            ):
                if is_delete_marker(entry):  # names no content
                    continue
                if entry.content in erased:
                    out.purged.add(entry.content)
                    continue
                out.contents.add(entry.content)
                if track_places and not is_history and entry.content not in out.places:
                    out.places[entry.content] = Place(repo, cid, key)
        if progress and len(out.nodes) % (20 * BATCH) < len(fresh):
            progress(f"{len(out.nodes)} tree nodes")
    return out
