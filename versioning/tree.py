"""Trees: the path -> ObjectEntry map of a commit, as a prolly tree.

Shape
-----
Items at every level are (key, value) pairs sorted by key (Python str order,
which equals UTF-8 byte order). Level 0 holds (path, ObjectEntry); level L>0
holds (max key of child, ChildRef). A node ends after an item whose key has
`height(key) > level`, or at the end of the level. height(key) is derived from
a 64-bit hash of the key: the number of trailing zero bits of
blake3(key.encode()) (first 8 bytes, little endian) divided by FANOUT_BITS.
So the tree's shape is a pure function of its key set (history-independent):
equal maps have equal root ids whatever edits built them, and unchanged
subtrees keep their ids, which makes diffs proportional to the change.
The root is the single node of the highest level; an empty tree's root is None.
A level with exactly one node is the top: no internal node has a single child
above the root (collapse such roots).

Encoding
--------
A node is the canonical msgpack of `[level, keys, values]`; leaf values are
`ObjectEntry.to_wire()` lists, internal values `[node_id, count, size]` where
count and size are the totals of the child's subtree. A node's id is the
16-byte BLAKE3 of that encoding.

Costs
-----
With N entries and k edited keys: `lookup` fetches O(log N) nodes; `iterate`
O(log N + yielded / fanout); `apply` fetches and writes O(k log N) nodes;
`diff` fetches O(changes * log N) nodes (unchanged subtrees are skipped by id);
`stats` fetches the root only.

One module on purpose: lookup, iterate, apply and diff all walk the same node
shape, and splitting them would put the shape's invariants in four places.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol, TypeAlias, cast

import blake3

from versioning.ids import NodeId, short_hash
from versioning.model import ObjectEntry, array_header, pack, unpack

FANOUT_BITS = 5  # average node size 2**5 = 32 items


@dataclass(frozen=True, slots=True)
class ChildRef:
    node: NodeId
    count: int  # entries in the subtree
    size: int  # total ObjectEntry.size in the subtree


_NODE_HEADER = array_header(3)


@dataclass(frozen=True, slots=True)
class Node:
    level: int
    keys: tuple[str, ...]
    values: tuple[ObjectEntry, ...] | tuple[ChildRef, ...]
    # Memoised encoding and id; not part of equality or the constructor.
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _id: NodeId | None = field(default=None, init=False, repr=False, compare=False)

    def encode(self) -> bytes:
        data = self._encoded
        if data is None:
            if self.level == 0:
                # == pack([level, keys, [entry wires]]), joining each entry's
                # cached bytes: a commit re-encodes every page on its path, and
                # all but one entry of a page are unchanged.
                entries = cast("tuple[ObjectEntry, ...]", self.values)
                data = b"".join(
                    [
                        _NODE_HEADER,
                        pack(self.level),
                        pack(list(self.keys)),
                        array_header(len(entries)),
                        *(e.packed() for e in entries),
                    ]
                )
            else:
                wire = [
                    [bytes(r.node), r.count, r.size]
                    for r in cast("tuple[ChildRef, ...]", self.values)
                ]
                data = pack([self.level, list(self.keys), wire])
            object.__setattr__(self, "_encoded", data)
        return data

    @staticmethod
    def decode(data: bytes) -> Node:
        level, keys, wire = unpack(data)
        if not isinstance(level, int) or level < 0 or len(keys) != len(wire) or not keys:
            raise ValueError("malformed tree node")
        if level == 0:
            values: tuple[ObjectEntry, ...] | tuple[ChildRef, ...] = tuple(
                ObjectEntry.from_wire(w) for w in wire
            )
        else:
            values = tuple(ChildRef(NodeId(bytes(w[0])), w[1], w[2]) for w in wire)
        return Node(level, tuple(keys), values)

    @property
    def id(self) -> NodeId:
        nid = self._id
        if nid is None:
            nid = NodeId(short_hash(self.encode()))
            object.__setattr__(self, "_id", nid)
        return nid

    def ref(self) -> ChildRef:
        """The parent item value pointing at this node (subtree totals)."""
        if self.level == 0:
            entries = cast("tuple[ObjectEntry, ...]", self.values)
            return ChildRef(self.id, len(entries), sum(e.size for e in entries))
        refs = cast("tuple[ChildRef, ...]", self.values)
        return ChildRef(self.id, sum(r.count for r in refs), sum(r.size for r in refs))


class NodeSource(Protocol):
    async def get_node(self, node_id: NodeId) -> Node: ...


Root = NodeId | None

_Value: TypeAlias = ObjectEntry | ChildRef


class MemoryNodeSource:
    """A dict-backed NodeSource; `fetches` counts get_node calls."""

    def __init__(self, nodes: Mapping[NodeId, Node] | None = None) -> None:
        self.nodes: dict[NodeId, Node] = dict(nodes or {})
        self.fetches = 0

    async def get_node(self, node_id: NodeId) -> Node:
        self.fetches += 1
        return self.nodes[node_id]

    def add(self, nodes: Mapping[NodeId, Node]) -> None:
        self.nodes.update(nodes)


@lru_cache(maxsize=1 << 17)
def _trailing_zeros(key: str) -> int:
    h = int.from_bytes(blake3.blake3(key.encode("utf-8")).digest(length=8), "little")
    if h == 0:
        return 64
    return (h & -h).bit_length() - 1


def past_prefix(prefix: str) -> str | None:
    """The least key greater than every key that starts with `prefix` (None
    when no such string exists): where a listing resumes after a common prefix."""
    last = ord(prefix[-1])
    return None if last >= 0x10FFFF else prefix[:-1] + chr(last + 1)


def height(key: str) -> int:
    """Boundary height of a key: trailing zero bits of its hash // FANOUT_BITS.

    A hash of 0 counts as 64 zero bits (height 12 with FANOUT_BITS = 5)."""
    return _trailing_zeros(key) // FANOUT_BITS


def _node(level: int, keys: Sequence[str], values: Sequence[_Value]) -> Node:
    return Node(level, tuple(keys), cast("tuple[ObjectEntry, ...]", tuple(values)))


def _child_index(node: Node, key: str) -> int:
    """Index of the first child whose max key >= key, or len(keys) if none."""
    return bisect.bisect_left(node.keys, key)


def _chunk(level: int, keys: Sequence[str], values: Sequence[_Value]) -> list[Node]:
    """Cut one level's complete item sequence into nodes by the boundary rule."""
    out: list[Node] = []
    start = 0
    for i, k in enumerate(keys):
        if height(k) > level:
            out.append(_node(level, keys[start : i + 1], values[start : i + 1]))
            start = i + 1
    if start < len(keys):
        out.append(_node(level, keys[start:], values[start:]))
    return out


async def lookup(src: NodeSource, root: Root, key: str) -> ObjectEntry | None:
    if root is None:
        return None
    node = await src.get_node(root)
    while True:
        i = _child_index(node, key)
        if i == len(node.keys):
            return None
        if node.level == 0:
            if node.keys[i] != key:
                return None
            return cast(ObjectEntry, node.values[i])
        node = await src.get_node(cast(ChildRef, node.values[i]).node)


# Leaves fetched together when a walk moves on to the next leaf (see iterate).
PREFETCH = 32


async def iterate(
    src: NodeSource, root: Root, start: str = ""
) -> AsyncIterator[tuple[str, ObjectEntry]]:
    """Entries with key >= start, in key order."""
    if root is None:
        return
    # stack of (internal node, index of the child currently being walked)
    stack: list[tuple[Node, int]] = []
    node = await src.get_node(root)
    while node.level > 0:
        i = _child_index(node, start)
        if i == len(node.keys):
            return
        stack.append((node, i))
        node = await src.get_node(cast(ChildRef, node.values[i]).node)
    i = bisect.bisect_left(node.keys, start)
    prefetch = getattr(src, "prefetch_nodes", None)
    while True:
        entries = cast("tuple[ObjectEntry, ...]", node.values)
        for j in range(i, len(node.keys)):
            yield node.keys[j], entries[j]
        # advance to the next leaf
        while stack:
            parent, pi = stack.pop()
            if pi + 1 < len(parent.keys):
                stack.append((parent, pi + 1))
                if prefetch is not None and parent.level == 1:
                    # A walk that reaches the next leaf usually reads several
                    # more: fetch a run of them in one round trip, not one each
                    # (already cached ones are skipped, so this is one query
                    # per PREFETCH leaves).
                    await prefetch(
                        [cast(ChildRef, r).node for r in parent.values[pi + 1 : pi + 1 + PREFETCH]]
                    )
                node = await src.get_node(cast(ChildRef, parent.values[pi + 1]).node)
                break
        else:
            return
        while node.level > 0:
            stack.append((node, 0))
            if prefetch is not None and node.level == 1:
                await prefetch([cast(ChildRef, r).node for r in node.values[:PREFETCH]])
            node = await src.get_node(cast(ChildRef, node.values[0]).node)
        i = 0


async def stats(src: NodeSource, root: Root) -> tuple[int, int]:
    """(number of entries, total size) of the tree."""
    if root is None:
        return 0, 0
    ref = (await src.get_node(root)).ref()
    return ref.count, ref.size


# -- apply ---------------------------------------------------------------------


class _Cursor:
    """Position of one node at a level of the old tree: its ancestors with the
    index taken in each, from the root down."""

    __slots__ = ("node", "path")

    def __init__(self, path: list[tuple[Node, int]], node: Node) -> None:
        self.path = path
        self.node = node

    @property
    def is_last(self) -> bool:
        return all(i == len(n.keys) - 1 for n, i in self.path)


class _Applier:
    def __init__(self, src: NodeSource, root: NodeId) -> None:
        self.src = src
        self.root_id = root
        self.cache: dict[NodeId, Node] = {}
        self.new_nodes: dict[NodeId, Node] = {}

    async def get(self, node_id: NodeId) -> Node:
        node = self.new_nodes.get(node_id) or self.cache.get(node_id)
        if node is None:
            node = await self.src.get_node(node_id)
            self.cache[node_id] = node
        return node

    async def _descend(
        self, path: list[tuple[Node, int]], node: Node, level: int, key: str | None
    ) -> _Cursor:
        """Walk down from `node` to `level`, towards `key` (leftmost if None)."""
        while node.level > level:
            i = 0 if key is None else min(_child_index(node, key), len(node.keys) - 1)
            path.append((node, i))
            node = await self.get(cast(ChildRef, node.values[i]).node)
        return _Cursor(path, node)

    async def find(self, level: int, key: str) -> _Cursor:
        """The old level-`level` node that holds `key`: the first whose max key
        is >= key, else the level's last node."""
        return await self._descend([], await self.get(self.root_id), level, key)

    async def next(self, cur: _Cursor) -> _Cursor:
        path = list(cur.path)
        while path:
            parent, i = path.pop()
            if i + 1 < len(parent.keys):
                path.append((parent, i + 1))
                child = await self.get(cast(ChildRef, parent.values[i + 1]).node)
                return await self._descend(path, child, cur.node.level, None)
        raise AssertionError("no next node at this level")

    async def apply_level(
        self, level: int, edits: list[tuple[str, _Value | None]]
    ) -> tuple[list[Node], list[Node]]:
        """Apply sorted key edits to one level of the old tree.

        Returns (the re-chunked nodes, the old nodes they replace), in key order."""
        edit_keys = [k for k, _ in edits]
        emitted: list[Node] = []
        removed: list[Node] = []
        i, n = 0, len(edits)
        while i < n:
            cur = await self.find(level, edit_keys[i])
            buf_k: list[str] = []
            buf_v: list[_Value] = []
            while True:
                node = cur.node
                removed.append(node)
                last = cur.is_last
                j = n if last else bisect.bisect_right(edit_keys, node.keys[-1], i)
                scan_from = len(buf_k)
                _merge_into(buf_k, buf_v, node, edits, i, j)
                i = j
                start = 0
                for p in range(scan_from, len(buf_k)):
                    if height(buf_k[p]) > level:
                        emitted.append(_node(level, buf_k[start : p + 1], buf_v[start : p + 1]))
                        start = p + 1
                del buf_k[:start]
                del buf_v[:start]
                if not buf_k:
                    break
                if last:
                    emitted.append(_node(level, buf_k, buf_v))
                    break
                # the group's last boundary went away: run on into the next node
                cur = await self.next(cur)
        return emitted, removed

    def parent_edits(
        self, emitted: list[Node], removed: list[Node]
    ) -> list[tuple[str, _Value | None]]:
        old = {nd.keys[-1]: nd for nd in removed}
        out: dict[str, _Value | None] = dict.fromkeys(old)
        for nd in emitted:
            mk = nd.keys[-1]
            if old.get(mk) == nd:
                del out[mk]  # re-chunked to the very same node
                continue
            self.new_nodes[nd.id] = nd
            out[mk] = nd.ref()
        return sorted(out.items(), key=lambda kv: kv[0])

    async def run(self, edits: list[tuple[str, _Value | None]]) -> Root:
        top = (await self.get(self.root_id)).level
        for lvl in range(top + 1):
            emitted, removed = await self.apply_level(lvl, edits)
            edits = self.parent_edits(emitted, removed)
            if not edits:
                return self.root_id  # nothing changed at this level, so above it
            if lvl == top:
                # the old top had one node, so `emitted` is the whole new level
                return await self.finish(emitted, lvl)
        raise AssertionError("unreachable")

    async def finish(self, nodes: list[Node], level: int) -> Root:
        if not nodes:
            return None
        nodes = _build_up(nodes, level, self.new_nodes)
        root = nodes[0]
        while root.level > 0 and len(root.keys) == 1:
            self.new_nodes.pop(root.id, None)
            root = await self.get(cast(ChildRef, root.values[0]).node)
        return root.id


def _merge_into(
    buf_k: list[str],
    buf_v: list[_Value],
    node: Node,
    edits: list[tuple[str, _Value | None]],
    i: int,
    j: int,
) -> None:
    """Append node's items with edits[i:j] applied (both sorted) to the buffers."""
    keys, values = node.keys, node.values
    a, na = 0, len(keys)
    while a < na or i < j:
        if i >= j or (a < na and keys[a] < edits[i][0]):
            buf_k.append(keys[a])
            buf_v.append(values[a])
            a += 1
            continue
        ek, ev = edits[i]
        if a < na and keys[a] == ek:
            a += 1
        if ev is not None:
            buf_k.append(ek)
            buf_v.append(ev)
        i += 1


def _build_up(nodes: list[Node], level: int, new_nodes: dict[NodeId, Node]) -> list[Node]:
    """Chunk levels above `level` until a single node remains; returns [root]."""
    while len(nodes) > 1:
        level += 1
        nodes = _chunk(level, [nd.keys[-1] for nd in nodes], [nd.ref() for nd in nodes])
        for nd in nodes:
            new_nodes[nd.id] = nd
    return nodes


async def apply(
    src: NodeSource, root: Root, edits: Mapping[str, ObjectEntry | None]
) -> tuple[Root, dict[NodeId, Node]]:
    """Apply puts (entry) and deletes (None) to a tree.

    Returns the new root and the nodes the new tree needs that may be new
    (the caller stores them). The result is exactly the tree built from scratch
    for the resulting map. Deleting an absent key is a no-op."""
    items: list[tuple[str, _Value | None]] = sorted(edits.items(), key=lambda kv: kv[0])
    if not items:
        return root, {}
    if root is None:
        new_nodes: dict[NodeId, Node] = {}
        puts = [(k, v) for k, v in items if v is not None]
        if not puts:
            return None, {}
        leaves = _chunk(0, [k for k, _ in puts], [v for _, v in puts])
        for nd in leaves:
            new_nodes[nd.id] = nd
        top = _build_up(leaves, 0, new_nodes)
        return top[0].id, new_nodes
    applier = _Applier(src, root)
    new_root = await applier.run(items)
    return new_root, applier.new_nodes


# -- diff ----------------------------------------------------------------------

# A work item: ("n", level, node id, max key) for a subtree, or
# ("e", key, entry, key) for an entry; the last field is the greatest key the
# item covers, so a walk seeking past a key drops whole subtrees unread.
_Work: TypeAlias = tuple[str, Any, Any, str]


async def _expand(src: NodeSource, node_id: NodeId, stack: list[_Work]) -> None:
    """Replace a subtree with its items on a stack whose top (end) is its head."""
    node = await src.get_node(node_id)
    if node.level == 0:
        stack.extend(
            ("e", k, v, k) for k, v in zip(reversed(node.keys), reversed(node.values), strict=True)
        )
    else:
        lvl = node.level - 1
        stack.extend(
            ("n", lvl, cast(ChildRef, v).node, k)
            for k, v in zip(reversed(node.keys), reversed(node.values), strict=True)
        )


def _skip_before(stack: list[_Work], start: str) -> None:
    while stack and stack[-1][3] < start:
        stack.pop()


async def diff(
    src: NodeSource, a: Root, b: Root, start: str = ""
) -> AsyncIterator[tuple[str, ObjectEntry | None, ObjectEntry | None]]:
    """(key, entry in a or None, entry in b or None) for every key >= start
    whose entry differs between the two trees, in key order. Seeking to
    `start` costs O(log N) node reads, not the changes before it."""
    if a == b:
        return
    sa: list[_Work] = []
    sb: list[_Work] = []
    if a is not None:
        await _expand(src, a, sa)
    if b is not None:
        await _expand(src, b, sb)
    while True:
        if start:
            _skip_before(sa, start)
            _skip_before(sb, start)
        if not sa and not sb:
            return
        if not sb:
            ta = sa.pop()
            if ta[0] == "n":
                await _expand(src, ta[2], sa)
            else:
                yield ta[1], ta[2], None
            continue
        if not sa:
            tb = sb.pop()
            if tb[0] == "n":
                await _expand(src, tb[2], sb)
            else:
                yield tb[1], None, tb[2]
            continue
        ta, tb = sa[-1], sb[-1]
        if ta[0] == "n" or tb[0] == "n":
            if ta[0] == "n" and tb[0] == "n":
                if ta[2] == tb[2]:
                    sa.pop()
                    sb.pop()
                    continue
                la, lb = ta[1], tb[1]
            else:
                la = ta[1] if ta[0] == "n" else -1
                lb = tb[1] if tb[0] == "n" else -1
            if la >= lb:
                sa.pop()
                await _expand(src, ta[2], sa)
            if lb >= la:
                sb.pop()
                await _expand(src, tb[2], sb)
            continue
        ka, kb = ta[1], tb[1]
        if ka < kb:
            sa.pop()
            yield ka, ta[2], None
        elif kb < ka:
            sb.pop()
            yield kb, None, tb[2]
        else:
            sa.pop()
            sb.pop()
            if ta[2] != tb[2]:
                yield ka, ta[2], tb[2]
