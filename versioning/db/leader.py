"""Leadership: which one of several servers on one database runs the
background duties meant to run once at a time (the pipeline scheduler,
periodic garbage collection).

The leader is whoever holds a PostgreSQL session advisory lock, on a
connection of its own (not the pool's: a session lock on a pooled connection
would outlive its user). PostgreSQL drops the lock when that session ends,
so a leader that exits, is killed (kill -9 closes its socket) or loses its
connection is replaced at the next check of another server. Server-side TCP
keepalives end the session of a leader whose host vanished within about
half a minute, instead of the operating system's two hours.

Leadership is an economy, not the safety net: between a leader losing its
session and noticing it (at most CHECK_SECONDS), two servers may both act as
leader. Every duty run under it is therefore also safe to run twice at once
(docs/design/multi-gateway.md says how, per duty).
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

log = logging.getLogger("loxo.leader")

# The maintenance leader's lock ("loxo" "ld"); catalog.GC_LOCK and MOVE_LOCK
# are other keys of the same space.
LEADER_LOCK = 0x6C6F786F_6C64
# How often a leader checks its session is alive, and a follower tries to
# take the lock (seconds); answers in between come from memory.
CHECK_SECONDS = 1.0
# A check that takes longer than this counts as a lost connection.
CHECK_TIMEOUT = 10.0
# Server-side keepalives for the leader's session: a host that vanished
# without closing its socket is noticed after about idle + interval * count s.
KEEPALIVES = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}


class Leadership:
    """This server's claim to lead, checked at most every `check_seconds`.

    With no DSN (a Database made from a bare pool, as in tests), this server
    cannot take part in an election and leads: it is taken to be alone.
    """

    def __init__(
        self,
        dsn: str | None,
        key: int = LEADER_LOCK,
        check_seconds: float = CHECK_SECONDS,
    ) -> None:
        self.dsn = dsn
        self.key = key
        self.check_seconds = check_seconds
        self._conn: asyncpg.Connection | None = None
        self._held = False
        self._checked = float("-inf")
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def held(self) -> bool:
        """The answer of the latest check (no database round trip)."""
        return self.dsn is None or self._held

    async def is_leader(self) -> bool:
        """Whether this server leads now: takes the lock when it is free, and
        checks that the session holding it is still alive."""
        if self.dsn is None:
            return True
        if time.monotonic() - self._checked < self.check_seconds:
            return self._held
        async with self._lock:
            if time.monotonic() - self._checked < self.check_seconds:
                return self._held
            before = self._held
            try:
                await self._check()
            except Exception as exc:  # whatever broke, this process must go on
                # The session (and so the lock, if it was held) is gone or
                # unreachable, or its connection is in a state we cannot
                # trust (a session ended by the server mid-query): follow
                # until a check on a new connection succeeds.
                self._held = False
                await self._drop()
                if before:
                    log.warning("lost leadership: %s", exc)
            self._checked = time.monotonic()
            if self._held and not before:
                log.info("leading the background duties (lock %#x)", self.key)
            return self._held

    async def _check(self) -> None:
        if self._closed:
            self._held = False
            return
        if self._conn is None or self._conn.is_closed():
            self._held = False
            self._conn = await asyncpg.connect(
                self.dsn,
                timeout=CHECK_TIMEOUT,
                server_settings={"application_name": "loxo-leader", **KEEPALIVES},
            )
        if self._held:
            # A live session still holds its session lock.
            await self._conn.fetchval("SELECT 1", timeout=CHECK_TIMEOUT)
        else:
            got = await self._conn.fetchval(
                "SELECT pg_try_advisory_lock($1)", self.key, timeout=CHECK_TIMEOUT
            )
            self._held = bool(got)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def close(self) -> None:
        """Give up leadership (closing the session frees the lock at once)."""
        async with self._lock:
            self._closed = True
            self._held = False
            conn, self._conn = self._conn, None
            if conn is not None and not conn.is_closed():
                try:
                    await asyncio.wait_for(conn.close(), CHECK_TIMEOUT)
                except Exception:  # a broken session: just drop the socket
                    conn.terminate()
