"""In-memory tree helpers shared by the tree and merge property tests: a
dict model of a tree, applying edits to it and to a real tree, and running
async bodies with a chosen fanout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from versioning import tree
from versioning.model import ObjectEntry
from versioning.tree import MemoryNodeSource, Root

T = TypeVar("T")
Model = dict[str, ObjectEntry]
Edits = dict[str, ObjectEntry | None]


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await coro_fn()

    return asyncio.run(main())


async def collect(it: AsyncIterator[T]) -> list[T]:
    return [x async for x in it]


@contextmanager
def fanout(bits: int) -> Iterator[None]:
    """Small fanouts give deep trees from few keys, exercising every level."""
    old = tree.FANOUT_BITS
    tree.FANOUT_BITS = bits
    try:
        yield
    finally:
        tree.FANOUT_BITS = old


def step(model: Model, edits: Edits) -> Model:
    """The model after `edits` (None deletes)."""
    out = dict(model)
    for k, v in edits.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


async def put(src: MemoryNodeSource, root: Root, edits: Edits) -> Root:
    """Apply `edits` to a real tree; its new nodes join `src`."""
    new_root, nodes = await tree.apply(src, root, edits)
    src.add(nodes)
    return new_root


async def read(src: MemoryNodeSource, root: Root) -> Model:
    return {k: v async for k, v in tree.iterate(src, root)}
