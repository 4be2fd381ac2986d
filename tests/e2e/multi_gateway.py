"""Several real `loxo serve` processes on one database and one data dir, for
tests/e2e/test_multi_gateway.py: starting them, and boto3 clients spread
round-robin over them (docs/design/multi-gateway.md)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from conftest import LoxoServer, s3_client


class Gateways:
    """N gateways sharing `dsn` and `data_dir`; `[i]` is the i-th."""

    def __init__(self, data_dir: Path, dsn: str, count: int) -> None:
        self.data_dir = data_dir
        self.dsn = dsn
        self.servers = [LoxoServer() for _ in range(count)]
        self._next = itertools.count()
        self._lock = threading.Lock()

    def start(self) -> Gateways:
        for server in self.servers:
            server.start(self.data_dir, self.dsn)
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __getitem__(self, index: int) -> LoxoServer:
        return self.servers[index]

    def __len__(self) -> int:
        return len(self.servers)

    def __iter__(self) -> Iterator[LoxoServer]:
        return iter(self.servers)

    def running(self) -> list[LoxoServer]:
        return [s for s in self.servers if s.running]

    def client(self, **config: Any) -> Any:
        """A boto3 client of the next gateway, round-robin over the running ones."""
        with self._lock:
            alive = self.running()
            server = alive[next(self._next) % len(alive)]
        return s3_client(server, **config)

    def clients(self, **config: Any) -> list[Any]:
        """One boto3 client per gateway (running or not), in order."""
        return [s3_client(server, **config) for server in self.servers]


def start_gateways(data_dir: Path, fresh_database: Callable[[], str], count: int = 3) -> Gateways:
    """`count` gateways on a fresh database and `data_dir`, started in turn."""
    return Gateways(data_dir, fresh_database(), count).start()
