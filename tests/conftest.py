"""Shared fixtures: a PostgreSQL, fresh databases, real loxo server processes, S3 clients.

PostgreSQL: 127.0.0.1:5432 (user postgres, no password) when it answers,
otherwise an embedded pgserver started for the session. Set
LOXO_TEST_DATABASE_URL to use another admin DSN, or LOXO_TEST_PGSERVER=1 to
force pgserver. Each loxo server under test gets its own database
(loxo_test_<pid>_<n>), dropped when the session ends.

A LoxoServer is `python -m gateway.cli serve` (or another `program=`, such as
an installed `loxo`) in a subprocess on a free loopback port; its output goes
to a log file per start (see `log_text`).
With `tls=` (see the `tls_files` fixture: a test CA and a server certificate
made at session start) it serves HTTPS, and its clients trust that CA; with
`domains=` it also serves virtual-host-style requests under those domains.
"""

from __future__ import annotations

import asyncio
import atexit
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REGION = "us-east-1"
READY_MARKER = "loxo listening on http"  # http:// or https://
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

# `tests/` is on sys.path because of this (package-less) conftest, and it holds
# directories named like loxo's packages (tests/gateway, tests/versioning) that
# would otherwise shadow them as namespace packages when pytest is started
# without the repo root on sys.path (e.g. `.venv/bin/pytest`).
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def fail_or_skip(message: str) -> None:
    """A missing prerequisite fails the run in CI and skips the test elsewhere."""
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


# Tools the tests want from Debian's packages specifically: a PATH may put
# another build first (pyenv's aws-cli v1, say), and the issue names these.
DEBIAN_TOOLS = {"aws": "/usr/bin/aws", "s3cmd": "/usr/bin/s3cmd", "rclone": "/usr/bin/rclone"}


def require_tool(name: str) -> str:
    debian = DEBIAN_TOOLS.get(name)
    path = debian if debian and os.access(debian, os.X_OK) else shutil.which(name)
    if path is None:
        if in_ci():
            pytest.fail(f"{name} is required in CI", pytrace=False)
        pytest.skip(f"{name} not installed; `./dev test` installs it with apt-get when run as root")
    return path


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


# --------------------------------------------------------------------------- PostgreSQL


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


async def _can_connect(dsn: str) -> str | None:
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


def with_database(dsn: str, name: str) -> str:
    """The DSN with its database replaced by `name` (works for host and socket DSNs)."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> Iterator[str]:
    """A DSN with the right to create databases."""
    reasons: list[str] = []
    explicit = os.environ.get("LOXO_TEST_DATABASE_URL")
    if explicit:
        error = run_async(_can_connect(explicit))
        if error is None:
            yield explicit
            return
        reasons.append(f"LOXO_TEST_DATABASE_URL={explicit} refused: {error}")
    elif not os.environ.get("LOXO_TEST_PGSERVER"):
        if _port_open("127.0.0.1", 5432):
            error = run_async(_can_connect(LOCAL_ADMIN_DSN))
            if error is None:
                yield LOCAL_ADMIN_DSN
                return
            reasons.append(f"{LOCAL_ADMIN_DSN} refused: {error}")
        else:
            reasons.append("nothing answers on 127.0.0.1:5432")
    # pgserver runs PostgreSQL as an unprivileged user when we are root, so its
    # directory must not sit below a 0700 pytest temp dir.
    base = Path(tempfile.mkdtemp(prefix="loxo-test-pg-"))
    base.chmod(0o755)
    server = None
    try:
        import pgserver

        server = pgserver.get_server(base / "pgdata", cleanup_mode="stop")
        dsn = server.get_uri()
        error = run_async(_can_connect(dsn))
        if error is not None:
            raise RuntimeError(error)
    except Exception as exc:
        reasons.append(f"the embedded pgserver did not start: {type(exc).__name__}: {exc}")
        if server is not None:
            server.cleanup()
        shutil.rmtree(base, ignore_errors=True)
        fail_or_skip("no PostgreSQL for the end-to-end tests: " + "; ".join(reasons))
        return
    try:
        yield dsn
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


async def drop_database(admin_dsn: str, name: str) -> None:
    """Drop a database (any name: it is quoted), ending its sessions first."""
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        quoted = '"' + name.replace('"', '""') + '"'
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted}")
    finally:
        await conn.close()


async def _create_database(admin_dsn: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted}")
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def fresh_database(postgres_admin_dsn: str) -> Iterator[Callable[[], str]]:
    """Factory: a new, empty database; returns its DSN. All are dropped at session end."""
    counter = itertools.count(1)
    created: list[str] = []

    def make() -> str:
        name = f"loxo_test_{os.getpid()}_{next(counter)}"
        run_async(_create_database(postgres_admin_dsn, name))
        created.append(name)
        return with_database(postgres_admin_dsn, name)

    yield make
    for name in created:
        try:
            run_async(drop_database(postgres_admin_dsn, name))
        except Exception as exc:  # pragma: no cover - best effort cleanup
            print(f"warning: could not drop test database {name}: {exc}", file=sys.stderr)


class Database:
    """Direct, read-mostly access to a loxo server's metadata for assertions."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    def fetch(self, sql: str, *args: Any) -> list[Any]:
        return run_async(self._fetch(sql, *args))  # type: ignore[no-any-return]

    def fetchval(self, sql: str, *args: Any) -> Any:
        rows = self.fetch(sql, *args)
        return rows[0][0] if rows else None

    def commit_count(self, repo: str) -> int:
        return int(self.fetchval("SELECT count(*) FROM commits WHERE repo = $1", repo))

    def branch_head(self, repo: str, branch: str = "main") -> str | None:
        rows = self.fetch("SELECT head FROM branches WHERE repo = $1 AND name = $2", repo, branch)
        assert rows, f"branch {repo}.{branch} does not exist"
        head = rows[0]["head"]
        return bytes(head).hex() if head is not None else None

    def commit_exists(self, repo: str, commit_hex: str) -> bool:
        return bool(
            self.fetchval(
                "SELECT count(*) FROM commits WHERE repo = $1 AND id = $2",
                repo,
                bytes.fromhex(commit_hex),
            )
        )


# --------------------------------------------------------------------------- TLS

# Names the test server certificate is valid for: loopback, and the domain the
# virtual-host tests serve (one label below it: a dotless bucket name).
TLS_DOMAIN = "s3.localtest"
TLS_DNS_NAMES = ("localhost", TLS_DOMAIN, f"*.{TLS_DOMAIN}")
TLS_IPS = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the test CA's certificate: the bundle clients verify with
    cert: Path  # the server certificate, signed by the CA
    key: Path  # its unencrypted private key


def make_tls_files(directory: Path) -> TlsFiles:
    """A throwaway CA and a server certificate for TLS_DNS_NAMES and TLS_IPS (PEM files)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=7))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loxo test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in TLS_DNS_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in TLS_IPS]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key.chmod(0o600)
    return files


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A test CA and a server certificate for 127.0.0.1, localhost and *.s3.localtest."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


# --------------------------------------------------------------------------- loxo servers


def child_pids(pid: int) -> list[int]:
    """The live (not zombie) child processes of `pid`, read from /proc."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while we looked
        if fields[0] != "Z" and int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def server_env(access_key: str | None, secret_key: str | None) -> dict[str, str]:
    """The environment for a loxo process: ours minus any LOXO_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOXO_")}
    env["PYTHONUNBUFFERED"] = "1"
    if access_key is not None and secret_key is not None:
        env["LOXO_ACCESS_KEY"] = access_key
        env["LOXO_SECRET_KEY"] = secret_key
    return env


def loxo_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the `loxo` command line as a user would: our environment minus any
    LOXO_* settings (plus `env`), from the repo root, with no stdin."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOXO_")}
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=Path(__file__).resolve().parents[1],
        env=base,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


class LoxoServer:
    """One loxo server process (restartable) on a data dir and a database.

    With access_key=None the server generates its own credentials; they are
    read back from data_dir/credentials.json after each start.
    """

    _all: list[LoxoServer] = []
    _serials = itertools.count(1)

    def __init__(
        self,
        access_key: str | None = "loxo-test-access",
        secret_key: str | None = "loxo-test-secret-key-0123456789",
        *,
        tls: TlsFiles | None = None,
        domains: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        program: Sequence[str] = (sys.executable, "-m", "gateway.cli"),
        cwd: Path = REPO_ROOT,
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.tls = tls
        self.domains = tuple(domains)
        self.extra_args = tuple(extra_args)  # more `loxo serve` options
        # what runs `loxo` (default: this checkout's, with this interpreter) and where
        self.program = tuple(program)
        self.cwd = cwd
        self._fixed_credentials = access_key is not None
        self.data_dir: Path | None = None
        self.dsn: str | None = None
        self.port: int | None = None
        self.proc: subprocess.Popen[str] | None = None
        self.returncode: int | None = None
        self.logs: list[Path] = []
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()
        self.serial = next(LoxoServer._serials)
        LoxoServer._all.append(self)

    # -- lifecycle -------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def ca_bundle(self) -> Path | None:
        """The CA file clients must trust (None for a plain-HTTP server)."""
        return self.tls.ca if self.tls is not None else None

    @property
    def endpoint(self) -> str:
        assert self.port is not None, "server was never started"
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        assert self.data_dir is not None
        cmd = [
            *self.program,
            "serve",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--data-dir",
            str(self.data_dir),
        ]
        if self.dsn is not None:
            cmd += ["--database-url", self.dsn]
        if self.tls is not None:
            cmd += ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
        for domain in self.domains:
            cmd += ["--domain", domain]
        if "--workers" not in self.extra_args:
            # Local pipeline workers are processes: only tests of pipelines ask for them.
            cmd += ["--workers", "0"]
        return cmd + list(self.extra_args)

    def start(
        self, data_dir: Path | str | None = None, dsn: str | None = None, port: int | None = None
    ) -> LoxoServer:
        """Start on `data_dir` and `dsn` (dsn None: loxo's embedded PostgreSQL)."""
        assert not self.running, "already running"
        if data_dir is not None:
            self.data_dir = Path(data_dir)
            self.dsn = dsn
        assert self.data_dir is not None, "start() needs a data dir the first time"
        attempts = 1 if port is not None else 3
        for attempt in range(attempts):
            self.port = port if port is not None else free_port()
            if self._launch():
                return self
            text = self.log_text()
            if "address already in use" not in text.lower() or attempt == attempts - 1:
                raise RuntimeError(
                    f"loxo did not start (exit code {self.returncode}); output:\n{text}"
                )
        raise AssertionError("unreachable")

    def _launch(self) -> bool:
        self.data_dir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        # one log per start, named per server: several servers may share a data dir
        log_path = self.data_dir.parent / (  # type: ignore[union-attr]
            f"{self.data_dir.name}-server{self.serial}-{len(self.logs) + 1}.log"  # type: ignore[union-attr]
        )
        self.logs.append(log_path)
        self._ready.clear()
        self.returncode = None
        env = server_env(
            self.access_key if self._fixed_credentials else None,
            self.secret_key if self._fixed_credentials else None,
        )
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._pump, args=(self.proc, log_path), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._ready.wait(0.05):
                break
            if self.proc.poll() is not None:
                self._reader.join(5)
                self.returncode = self.proc.returncode
                self.proc = None
                return False
        else:
            self.stop(signal.SIGKILL)
            raise RuntimeError(
                f"loxo printed no '{READY_MARKER}' line within {START_TIMEOUT:.0f} s; "
                f"output:\n{self.log_text()}"
            )
        if not self._fixed_credentials:
            doc = json.loads((self.data_dir / "credentials.json").read_text())  # type: ignore[operator]
            self.access_key, self.secret_key = doc["access_key"], doc["secret_key"]
        return True

    def _pump(self, proc: subprocess.Popen[str], log_path: Path) -> None:
        assert proc.stdout is not None
        with open(log_path, "w", encoding="utf-8") as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if READY_MARKER in line:
                    self._ready.set()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int | None:
        """Signal the process and wait for it; returns its exit code (SIGKILL after timeout)."""
        proc = self.proc
        if proc is None:
            return self.returncode
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._reader is not None:
            self._reader.join(10)
        self.returncode = proc.returncode
        self.proc = None
        return self.returncode

    def restart(self) -> LoxoServer:
        """Stop (if running) and start again on the same data dir and database,
        on the same port when it is still free."""
        if self.running:
            self.stop()
        port = self.port
        if port is not None and _port_free(port):
            try:
                return self.start(port=port)
            except RuntimeError:
                if "address already in use" not in self.log_text().lower():
                    raise
        return self.start()

    def log_text(self, run: int = -1) -> str:
        """Output of one start (default: the latest); run=None joins all of them."""
        if not self.logs:
            return ""
        paths = self.logs if run is None else [self.logs[run]]
        return "".join(p.read_text("utf-8", "replace") if p.exists() else "" for p in paths)

    # -- helpers ---------------------------------------------------------------

    def client(self, **overrides: Any) -> Any:
        return s3_client(self, **overrides)

    def db(self) -> Database:
        assert self.dsn is not None, "this server uses the embedded PostgreSQL"
        return Database(self.dsn)

    def maintenance(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `loxo <args>` (gc, fsck) on this server's data: its data dir,
        database and, when it was given one, its --store and --store-endpoint."""
        assert self.data_dir is not None and self.dsn is not None
        storage = []
        for i, arg in enumerate(self.extra_args[:-1]):
            if arg in ("--store", "--store-endpoint"):
                storage += [arg, self.extra_args[i + 1]]
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                *args,
                "--data-dir",
                str(self.data_dir),
                "--database-url",
                self.dsn,
                *storage,
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def chunk_files(self) -> list[Path]:
        assert self.data_dir is not None
        root = self.data_dir / "chunks"
        if not root.exists():
            return []
        # Open multipart uploads' fragments (chunks/fragments/) are not chunks.
        return [
            p
            for p in root.rglob("*")
            if p.is_file() and len(p.name) == 64 and p.relative_to(root).parts[0] != "fragments"
        ]


_session_lock = threading.Lock()
_boto_session: Any = None


def s3_client(
    server: LoxoServer,
    access_key: str | None = None,
    secret_key: str | None = None,
    **config: Any,
) -> Any:
    """A boto3 S3 client for `server` (path-style, us-east-1, SigV4, 3 attempts).

    `verify` (default: the server's test CA over HTTPS) and `endpoint_url` may
    be overridden; every other keyword is a botocore Config option.

    Clients come from one boto3 session (its loaded service models are reused:
    a client then costs ~10 ms instead of ~200 ms); creating them is serialized
    because a session is not thread-safe, using them is not.
    """
    import boto3
    from botocore.config import Config

    global _boto_session
    options: dict[str, Any] = {
        "signature_version": "s3v4",
        "s3": {"addressing_style": "path"},
        "retries": {"max_attempts": 3, "mode": "standard"},
        "connect_timeout": 10,
        "read_timeout": 120,
        "max_pool_connections": 20,
    }
    verify = config.pop("verify", None)
    endpoint_url = config.pop("endpoint_url", server.endpoint)
    options.update(config)
    if verify is None and server.ca_bundle is not None:
        verify = str(server.ca_bundle)
    with _session_lock:
        if _boto_session is None:
            _boto_session = boto3.session.Session()
        return _boto_session.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=REGION,
            aws_access_key_id=access_key or server.access_key,
            aws_secret_access_key=secret_key or server.secret_key,
            config=Config(**options),
            verify=verify,
        )


def _kill_leftovers() -> None:
    for server in LoxoServer._all:
        if server.running:
            server.stop(signal.SIGKILL)


atexit.register(_kill_leftovers)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def server(
    tmp_path_factory: pytest.TempPathFactory, fresh_database: Callable[[], str]
) -> Iterator[LoxoServer]:
    """One loxo server shared by the whole session. Don't stop it in a test."""
    srv = LoxoServer().start(tmp_path_factory.mktemp("shared") / "data", fresh_database())
    yield srv
    code = srv.stop()
    if code != 0:
        print(
            f"warning: shared loxo server exited with {code}:\n{srv.log_text()[-4000:]}",
            file=sys.stderr,
        )


@pytest.fixture
def make_server(
    request: pytest.FixtureRequest, tmp_path: Path, fresh_database: Callable[[], str]
) -> Iterator[Callable[..., LoxoServer]]:
    """Factory for a private server (for tests that stop or restart one).

    make_server(data_dir=None, dsn=None, credentials=True): a fresh data dir and
    a fresh database by default; credentials=False lets loxo generate its own;
    embedded=True uses loxo's embedded PostgreSQL instead of a database;
    tls=True serves HTTPS with the session's test certificate (`tls_files`);
    domains=[...] adds virtual-host-style addressing under those domains;
    extra_args=[...] are more `loxo serve` options.
    """
    started: list[LoxoServer] = []
    counter = itertools.count(1)

    def make(
        data_dir: Path | None = None,
        dsn: str | None = None,
        credentials: bool = True,
        embedded: bool = False,
        tls: bool = False,
        domains: Sequence[str] = (),
        extra_args: Sequence[str] = (),
    ) -> LoxoServer:
        n = next(counter)
        files = request.getfixturevalue("tls_files") if tls else None
        keys: tuple[str | None, ...] = () if credentials else (None, None)
        srv = LoxoServer(*keys, tls=files, domains=domains, extra_args=extra_args)
        started.append(srv)
        if dsn is None and not embedded:
            dsn = fresh_database()
        return srv.start(data_dir or tmp_path / f"server{n}" / "data", dsn)

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture(scope="session")
def https_server(
    tmp_path_factory: pytest.TempPathFactory,
    fresh_database: Callable[[], str],
    tls_files: TlsFiles,
) -> Iterator[LoxoServer]:
    """One loxo server serving HTTPS with the test certificate, shared by the session."""
    srv = LoxoServer(tls=tls_files).start(
        tmp_path_factory.mktemp("shared-https") / "data", fresh_database()
    )
    yield srv
    code = srv.stop()
    if code != 0:
        print(
            f"warning: HTTPS loxo server exited with {code}:\n{srv.log_text()[-4000:]}",
            file=sys.stderr,
        )


@pytest.fixture(scope="session")
def s3(server: LoxoServer) -> Any:
    """A boto3 client for the shared server."""
    return server.client()


@pytest.fixture(scope="session")
def db(server: LoxoServer) -> Database:
    """The shared server's metadata database."""
    return server.db()


_names = itertools.count(1)


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}-{os.getpid() % 10000}-{next(_names)}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def new_bucket(s3: Any) -> Callable[..., str]:
    """Factory: a unique valid repo name (lowercase letters, digits, hyphens),
    created on the shared server unless create=False."""

    def make(prefix: str = "t", create: bool = True) -> str:
        name = unique_name(prefix)
        if create:
            s3.create_bucket(Bucket=name)
        return name

    return make


@pytest.fixture(name="require_tool")
def require_tool_fixture() -> Callable[[str], str]:
    return require_tool


# --------------------------------------------------------------------------- aws CLI


def aws_cli(
    server: LoxoServer, *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `aws --endpoint-url <server> ARGS` with the server's credentials and
    an empty configuration (AWS_CA_BUNDLE = the test CA for an HTTPS server);
    fails the test with both outputs when it exits non-zero."""
    aws = require_tool("aws")
    with tempfile.TemporaryDirectory(prefix="loxo-aws-") as home:
        config = Path(home) / "config"
        config.write_text(f"[default]\nregion = {REGION}\n")
        credentials = Path(home) / "credentials"
        credentials.write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=server.access_key or "",
            AWS_SECRET_ACCESS_KEY=server.secret_key or "",
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE=str(config),
            AWS_SHARED_CREDENTIALS_FILE=str(credentials),
            AWS_EC2_METADATA_DISABLED="true",
            AWS_PAGER="",
        )
        if server.ca_bundle is not None:
            env["AWS_CA_BUNDLE"] = str(server.ca_bundle)
        cmd = [aws, "--endpoint-url", server.endpoint, *args]
        proc = subprocess.run(
            cmd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    if check:
        assert proc.returncode == 0, (
            f"`aws {' '.join(args)}` exited with {proc.returncode}\n"
            f"--- stderr ---\n{proc.stderr[-4000:]}\n--- stdout ---\n{proc.stdout[-2000:]}\n"
            f"--- server log (tail) ---\n{server.log_text()[-3000:]}"
        )
    return proc


@pytest.fixture(name="aws_cli")
def aws_cli_fixture() -> Callable[..., subprocess.CompletedProcess[str]]:
    return aws_cli


# --------------------------------------------------------------------------- raw signed HTTP


class RawS3:
    """Hand-signed SigV4 requests over ONE keep-alive HTTP connection.

    For what boto3 will not send: a payload hash that does not match the body,
    malformed digests. `sock_id()` identifies the TCP connection, so a test can
    check that an error response did not cost the connection.
    """

    def __init__(self, server: LoxoServer) -> None:
        self.server = server
        self.conn: http.client.HTTPConnection
        if server.ca_bundle is not None:
            import ssl

            context = ssl.create_default_context(cafile=str(server.ca_bundle))
            self.conn = http.client.HTTPSConnection(
                "127.0.0.1", server.port, timeout=60, context=context
            )
        else:
            self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)

    def close(self) -> None:
        self.conn.close()

    def sock_id(self) -> int | None:
        return id(self.conn.sock) if self.conn.sock is not None else None

    def request(
        self,
        method: str,
        bucket: str | None = None,
        key: str | None = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        query: str = "",
        sign_body: bytes | None = None,
        secret_key: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send a signed request; `sign_body` signs a different payload than is sent."""
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        path = "/"
        if bucket:
            path += quote(bucket)
            if key:
                path += "/" + quote(key, safe="/~")
        url = f"{self.server.endpoint}{path}" + (f"?{query}" if query else "")
        all_headers = dict(headers or {})
        if body or method in ("PUT", "POST"):
            all_headers["Content-Length"] = str(len(body))
        signed = AWSRequest(
            method=method,
            url=url,
            data=sign_body if sign_body is not None else body,
            headers=all_headers,
        )
        creds = Credentials(self.server.access_key, secret_key or self.server.secret_key)
        S3SigV4Auth(creds, "s3", REGION).add_auth(signed)
        self.conn.request(
            method,
            path + (f"?{query}" if query else ""),
            body=body or None,
            headers=dict(signed.headers.items()),
        )
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


@pytest.fixture
def raw_s3(server: LoxoServer) -> Iterator[RawS3]:
    client = RawS3(server)
    yield client
    client.close()


def error_code(body: bytes) -> str | None:
    """The <Code> of an S3 error document."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    code = root.find("Code")
    return code.text if code is not None else None


# --------------------------------------------------------------------------- moto
# An S3 endpoint for the S3 chunk store: moto's standalone server (from the
# `test` extra, next to this interpreter), once per session on a free port.
# When it is missing the S3 tests fail in CI and are skipped elsewhere.

MOTO_START_TIMEOUT = 30.0
MOTO_REGION = "us-east-1"


def _moto_answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/moto-api/")
        conn.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        conn.close()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint URL of a moto S3 server shared by the session."""
    # The venv's bin dir, not PATH: the tests must use the moto they installed.
    binary = Path(sys.executable).parent / "moto_server"
    if not os.access(binary, os.X_OK):
        message = f"{binary} not installed; `./dev test` installs it with the test extra"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + MOTO_START_TIMEOUT
        while not _moto_answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                output = log_path.read_text("utf-8", "replace")[-3000:]
                pytest.fail(
                    f"moto_server on port {port} did not start "
                    f"(exit code {proc.poll()}); output:\n{output}",
                    pytrace=False,
                )
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def moto_s3(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The moto endpoint, with fake credentials and no user AWS configuration."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    empty = tmp_path / "aws-empty-config"
    empty.write_text("")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", MOTO_REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return moto_server


def lists_bucket(text: str, name: str) -> bool:
    """Whether a client's bucket listing (one bucket per line, its name last:
    `aws s3 ls`, `s3cmd ls`, `rclone lsd`) names exactly `name`."""
    return re.search(rf"(?m)(^|[ /]){re.escape(name)}\s*$", text) is not None
