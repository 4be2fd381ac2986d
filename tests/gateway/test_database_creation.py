"""`loxo serve --database-url` naming a database that does not exist yet: loxo
creates it when its role may, and otherwise says how to create it."""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from tests.conftest import drop_database, free_port, loxo_cli, run_async, with_database


def quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def _admin(admin_dsn: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _database_exists(admin_dsn: str, name: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        return bool(
            await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name)
        )
    finally:
        await conn.close()


@pytest.fixture
def new_database_name(postgres_admin_dsn: str) -> Iterator[str]:
    """A database name nothing has created yet, dropped after the test. It
    needs quoting both in SQL and in a URL: a capital, a hyphen, a space and a
    double quote."""
    name = f'loxo_test_New-"db" {uuid.uuid4().hex[:8]}'
    yield name
    run_async(drop_database(postgres_admin_dsn, name))


def as_role(dsn: str, role: str) -> str:
    """The DSN with its user (and no password) replaced by `role`."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{role}@{host}", parts.path, parts.query, parts.fragment))


def test_serve_creates_a_missing_database(
    make_server: Any, postgres_admin_dsn: str, new_database_name: str
) -> None:
    assert not run_async(_database_exists(postgres_admin_dsn, new_database_name))
    dsn = with_database(postgres_admin_dsn, quote(new_database_name, safe=""))
    srv = make_server(dsn=dsn)
    assert run_async(_database_exists(postgres_admin_dsn, new_database_name))
    s3 = srv.client()
    s3.create_bucket(Bucket="created")
    s3.put_object(Bucket="created", Key="k", Body=b"in a database loxo created")
    assert s3.get_object(Bucket="created", Key="k")["Body"].read() == b"in a database loxo created"
    assert srv.db().commit_count("created") >= 1  # the metadata is in that database
    assert srv.stop() == 0
    assert "Traceback" not in srv.log_text(), srv.log_text()


def test_serve_says_how_to_create_a_database_it_may_not(
    tmp_path: Path, postgres_admin_dsn: str, new_database_name: str
) -> None:
    role = f"loxo_nocreate_{uuid.uuid4().hex[:8]}"
    # LOGIN without CREATEDB: trust authentication lets it in, nothing lets it create.
    run_async(_admin(postgres_admin_dsn, f"CREATE ROLE {quoted(role)} LOGIN NOCREATEDB"))
    try:
        dsn = as_role(with_database(postgres_admin_dsn, quote(new_database_name, safe="")), role)
        result = loxo_cli(
            "serve",
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--data-dir",
            str(tmp_path / "d"),
            "--database-url",
            dsn,
            env={"LOXO_ACCESS_KEY": "a", "LOXO_SECRET_KEY": "b"},
        )
    finally:
        run_async(_admin(postgres_admin_dsn, f"DROP ROLE IF EXISTS {quoted(role)}"))
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "loxo listening" not in output
    assert "Traceback" not in output, output
    parts = urlsplit(postgres_admin_dsn)
    host = parts.hostname or dict(
        pair.split("=", 1) for pair in parts.query.split("&") if "=" in pair
    ).get("host")
    command = ["createdb"]
    if host:
        command += ["-h", host]
    if parts.port:
        command += ["-p", str(parts.port)]
    # run by the superuser, owned by loxo's role: the role itself may not create it
    command += ["-U", "postgres", "-O", role, new_database_name]
    assert shlex.join(command) in result.stderr, result.stderr
    assert not run_async(_database_exists(postgres_admin_dsn, new_database_name))


@pytest.mark.parametrize("command", ["gc", "fsck"])
def test_maintenance_never_creates_a_missing_database(
    command: str, tmp_path: Path, postgres_admin_dsn: str, new_database_name: str
) -> None:
    """A misspelt --database-url must not become an empty database that
    checks as fine: gc and fsck refuse it and create nothing."""
    dsn = with_database(postgres_admin_dsn, quote(new_database_name, safe=""))
    result = loxo_cli(command, "--data-dir", str(tmp_path / "d"), "--database-url", dsn)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "does not exist" in output, output
    assert "Traceback" not in output, output
    assert not run_async(_database_exists(postgres_admin_dsn, new_database_name))
