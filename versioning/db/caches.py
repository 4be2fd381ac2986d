"""In-memory caches of immutable, content-addressed metadata.

A value named by its own hash never changes, so a cached copy is never
stale; only a deleted repo's commits must be dropped (see PgObjects).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

# Tree nodes are cached twice: a few thousand decoded (a decoded leaf of 32
# entries is ~20 KB of Python objects, ~7x its encoding) and many more as
# their encoded bytes (decoding one costs ~50 us, a round trip ~300 us). A
# count-bounded cache of 50,000 decoded nodes grew the server past 600 MB
# after 100,000 small PUTs (benchmarks P7); with these the server stays near
# 150 MB after 20,000 PUTs (64 MiB of encoded nodes: ~200 MB).
DECODED_NODES = 2_000
ENCODED_NODE_BYTES = 16 * 1024 * 1024


class LRU:
    """A map bounded by its number of entries, least recently used out."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[bytes, Any] = OrderedDict()

    def __contains__(self, key: bytes) -> bool:
        return key in self._data

    def get(self, key: bytes) -> Any | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: bytes, value: Any) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def drop_where(self, predicate: Callable[[Any], bool]) -> None:
        for key in [k for k, v in self._data.items() if predicate(v)]:
            del self._data[key]


class ByteLRU:
    """A map of byte strings bounded by their total size, least recently used out."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.total = 0
        self._data: OrderedDict[bytes, bytes] = OrderedDict()

    def get(self, key: bytes) -> bytes | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def __contains__(self, key: bytes) -> bool:
        return key in self._data

    def put(self, key: bytes, value: bytes) -> None:
        old = self._data.pop(key, None)
        if old is not None:
            self.total -= len(old)
        self._data[key] = value
        self.total += len(value)
        while self.total > self.max_bytes and self._data:
            _, dropped = self._data.popitem(last=False)
            self.total -= len(dropped)
