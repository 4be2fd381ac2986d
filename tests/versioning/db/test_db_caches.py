"""The metadata caches stay within their bounds (server memory depends on it)."""

from __future__ import annotations

from versioning.db.caches import ByteLRU


def test_byte_lru_evicts_least_recently_used_by_total_size() -> None:
    cache = ByteLRU(100)
    for i in range(10):
        cache.put(bytes([i]), b"x" * 30)
        assert cache.total <= 100
    assert [k for k in (bytes([i]) for i in range(10)) if k in cache] == [
        bytes([7]),
        bytes([8]),
        bytes([9]),
    ]
    assert cache.get(bytes([7])) == b"x" * 30  # now the most recent
    cache.put(b"new", b"y" * 30)
    assert bytes([7]) in cache and bytes([8]) not in cache
    cache.put(b"new", b"z" * 10)  # replacing a value re-counts its size
    assert cache.total == 30 + 30 + 10
    cache.put(b"huge", b"h" * 500)  # larger than the bound: nothing kept
    assert cache.total == 0 and b"huge" not in cache
