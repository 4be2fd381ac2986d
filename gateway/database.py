"""Getting the configured PostgreSQL database ready to use: waiting while it
starts or recovers from a crash, creating it when it does not exist yet (or
saying exactly how to), and applying the schema migrations."""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit, urlunsplit

import asyncpg

from versioning import migrations

CONNECT_TIMEOUT = 15.0
# How long to wait for a PostgreSQL that is starting or in crash recovery.
RECOVERY_WAIT_SECONDS = 60.0
# Where CREATE DATABASE is run from, in the order createdb(1) tries them.
MAINTENANCE_DATABASES = ("postgres", "template1")


@dataclass(frozen=True)
class _Address:
    """What a DSN names, as far as it says: None is "the libpq default"."""

    host: str | None
    port: int | None
    user: str | None
    database: str | None


def _address(dsn: str) -> _Address:
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)

    def param(*names: str) -> str | None:
        for name in names:
            if query.get(name):
                return query[name][0]
        return None

    try:
        port: int | None = parts.port
    except ValueError:  # several host:port pairs
        port = None
    if port is None:
        text = param("port")
        port = int(text) if text and text.isdigit() else None
    path = unquote(parts.path.lstrip("/"))
    return _Address(
        host=parts.hostname or param("host"),
        port=port,
        user=unquote(parts.username) if parts.username else param("user"),
        database=path or param("dbname", "database"),
    )


def where(dsn: str) -> str:
    """The database a DSN names, without its password."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    host = parts.hostname or (query.get("host") or ["localhost"])[0]
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path or '/'}"


def _on_database(dsn: str, name: str) -> str:
    """The same server and credentials, connected to database `name`."""
    parts = urlsplit(dsn)
    query = [
        (key, value)
        for key, values in parse_qs(parts.query, keep_blank_values=True).items()
        if key not in ("dbname", "database")
        for value in values
    ]
    path = "/" + quote(name, safe="")
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), parts.fragment))


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def createdb_command(dsn: str, name: str) -> str:
    """The createdb(1) command line that makes database `name` where `dsn`
    points, owned by the DSN's role (so that loxo may create its tables in it).

    It runs as the superuser PostgreSQL is installed with: the DSN's own role
    is the one that may not create databases.
    """
    address = _address(dsn)
    command = ["createdb"]
    if address.host:
        command += ["-h", address.host]
    if address.port:
        command += ["-p", str(address.port)]
    command += ["-U", "postgres"]
    if address.user:
        command += ["-O", address.user]
    return shlex.join([*command, name])


class _CannotCreate(Exception):
    pass


async def _create(dsn: str, name: str) -> None:
    """CREATE DATABASE `name` on the DSN's server, as the DSN's role."""
    last: Exception | None = None
    for maintenance in MAINTENANCE_DATABASES:
        try:
            conn = await asyncio.wait_for(
                asyncpg.connect(_on_database(dsn, maintenance)), timeout=CONNECT_TIMEOUT
            )
        except asyncpg.InvalidCatalogNameError as exc:
            last = exc
            continue
        except (OSError, asyncpg.PostgresError) as exc:
            raise _CannotCreate(str(exc) or type(exc).__name__) from exc
        try:
            await conn.execute(f"CREATE DATABASE {_quote_identifier(name)}")
        except asyncpg.DuplicateDatabaseError:
            pass  # another process starting on the same database made it meanwhile
        except (OSError, asyncpg.PostgresError) as exc:
            raise _CannotCreate(str(exc) or type(exc).__name__) from exc
        finally:
            await conn.close()
        return
    raise _CannotCreate(f"no maintenance database to connect to ({last})")


async def _connect(dsn: str) -> asyncpg.Connection:
    """A connection, waiting (bounded) while PostgreSQL answers that it is
    starting up or in crash recovery, as it does when started with loxo."""
    deadline = time.monotonic() + RECOVERY_WAIT_SECONDS
    said = False
    while True:
        try:
            return await asyncio.wait_for(asyncpg.connect(dsn), timeout=CONNECT_TIMEOUT)
        except asyncpg.CannotConnectNowError as exc:
            if time.monotonic() >= deadline:
                raise
            if not said:
                print(
                    f"loxo: waiting for PostgreSQL's crash recovery (or start) at "
                    f"{where(dsn)}: {exc}",
                    file=sys.stderr,
                    flush=True,
                )
                said = True
            await asyncio.sleep(0.5)


async def _connect_creating(dsn: str, create: bool) -> asyncpg.Connection:
    """A connection to the DSN's database, created first if it does not exist
    (and `create` allows it)."""
    try:
        return await _connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        name = _address(dsn).database
        if name is None or not create:
            raise
    await _create(dsn, name)
    print(f"loxo: created the database {name} at {where(dsn)}", file=sys.stderr, flush=True)
    return await _connect(dsn)


def prepare_database(dsn: str, create: bool = True) -> str | None:
    """Connect once (creating the database if it is missing, unless `create`
    is False) and apply pending migrations; returns an error message, or None
    when the database is ready.
    """

    async def probe() -> None:
        conn = await _connect_creating(dsn, create)
        try:
            await migrations.apply_all(conn)
        finally:
            await conn.close()

    try:
        asyncio.run(probe())
    except migrations.SchemaTooNew as exc:
        return f"database {where(dsn)}: {exc}"
    except _CannotCreate as exc:
        name = _address(dsn).database or ""
        user = _address(dsn).user
        role = f"role {user}" if user else "the default role"
        return (
            f"the database {name} does not exist at {where(dsn)}, and {role} could not "
            f"create it: {exc}\n"
            f"  Create it as a role that may (such as postgres), then start loxo again:\n"
            f"    {createdb_command(dsn, name)}"
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        return f"cannot use the PostgreSQL database at {where(dsn)}: {reason}"
    return None
