"""One page of a key-ordered listing with S3's prefix, delimiter and max-keys.

ListObjects, ListObjectsV2 and ListObjectVersions all page the same way: keys
in order from a start, those under `prefix` only, every key that has
`delimiter` after the prefix rolled up into one common prefix (counted as one
item), at most max-keys items. A common prefix is emitted once and then
skipped with a fresh seek past every key that shares it, never by scanning
them, so a page costs O(page + log N).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from versioning.tree import past_prefix

T = TypeVar("T")

# Items of the walk: (object key, item). A walk(seek) starts at the first
# record whose sort key is >= seek; records of one key are consecutive.
Walk = Callable[[str], AsyncIterator[tuple[str, T]]]


@dataclass(slots=True)
class Page(Generic[T]):
    items: list[tuple[str, T]] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    # The last key or common prefix on the page, and the item with it (None
    # for a common prefix): where the next page resumes.
    last: str | None = None
    last_item: T | None = None


async def page(
    walk: Walk[T],
    *,
    seek: str,
    prefix: str,
    delimiter: str,
    max_items: int,
    passed: str = "",
) -> Page[T]:
    """One page from `seek`. Common prefixes that sort at or before `passed`
    (the previous page's last item) were listed already and are skipped."""
    out: Page[T] = Page()
    seek = max(seek, prefix)
    count = 0
    while True:
        restart: str | None = None
        async for key, item in walk(seek):
            if not key.startswith(prefix):
                if key > prefix:
                    return out
                continue
            common = _common_prefix(key, prefix, delimiter)
            if common is not None:
                if passed and common <= passed:
                    restart = past_prefix(common)
                    if restart is None:
                        continue  # cannot seek past U+10FFFF: walk on
                    break
                if count >= max_items:
                    out.truncated = max_items > 0
                    return out
                count += 1
                out.prefixes.append(common)
                out.last, out.last_item = common, None
                restart = past_prefix(common)
                passed = common
                if restart is None:
                    continue
                break
            if count >= max_items:
                out.truncated = max_items > 0
                return out
            count += 1
            out.items.append((key, item))
            out.last, out.last_item = key, item
        else:
            return out
        seek = restart


def _common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    cut = key.find(delimiter, len(prefix))
    return key[: cut + len(delimiter)] if cut >= 0 else None
