"""The `loxo` command line and process lifecycle, driven as a user would."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import loxo_cli as loxo

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_help() -> None:
    top = loxo("--help")
    assert top.returncode == 0, top.stderr
    assert "serve" in top.stdout
    serve = loxo("serve", "--help")
    assert serve.returncode == 0, serve.stderr
    for option in ("--listen", "--data-dir", "--database-url"):
        assert option in serve.stdout


def test_console_script_exists() -> None:
    script = Path(sys.executable).parent / "loxo"
    if not script.exists():
        pytest.skip("loxo is not installed as a console script in this environment")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout


def test_version() -> None:
    result = loxo("version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


@pytest.mark.parametrize("listen", ["bad", "127.0.0.1", "127.0.0.1:99999", "host:port", ""])
def test_bad_listen_address(tmp_path: Path, listen: str) -> None:
    result = loxo("serve", "--listen", listen, "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "--listen must be HOST:PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_half_configured_credentials(tmp_path: Path) -> None:
    result = loxo(
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        str(tmp_path / "d"),
        env={"LOXO_ACCESS_KEY": "only-the-access-key"},
    )
    assert result.returncode == 2
    assert "LOXO_ACCESS_KEY" in result.stderr and "LOXO_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use(server: Any, tmp_path: Path, fresh_database: Any) -> None:
    result = loxo(
        "serve",
        "--listen",
        f"127.0.0.1:{server.port}",
        "--data-dir",
        str(tmp_path / "d"),
        "--database-url",
        fresh_database(),
        env={"LOXO_ACCESS_KEY": "a", "LOXO_SECRET_KEY": "b"},
    )
    assert result.returncode != 0
    output = (result.stdout + result.stderr).lower()
    assert "address already in use" in output, output
    assert server.client().list_buckets() is not None  # the running server is unharmed


def test_unreachable_database(tmp_path: Path) -> None:
    """A database that does not answer is a configuration problem: one clear
    message naming the database, a non-zero exit, no traceback."""
    port = free_port()
    dead = f"postgresql://postgres@127.0.0.1:{port}/nothing"
    result = loxo(
        "serve",
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--data-dir",
        str(tmp_path / "d"),
        "--database-url",
        dead,
        env={"LOXO_ACCESS_KEY": "a", "LOXO_SECRET_KEY": "b"},
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "loxo listening" not in output
    assert f"127.0.0.1:{port}" in output, output
    assert "Traceback" not in output, output


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_shuts_down_cleanly(make_server: Any, sig: signal.Signals) -> None:
    srv = make_server()
    s3 = srv.client()
    s3.create_bucket(Bucket="sig")
    s3.put_object(Bucket="sig", Key="k", Body=b"v")
    code = srv.stop(sig)
    log = srv.log_text()
    assert "Traceback" not in log, log
    assert code == 0, (
        f"loxo exited with {code} after {sig.name} (negative: killed by the signal), "
        f"not 0; output:\n{log}"
    )


def test_signal_waits_for_in_flight_requests(make_server: Any) -> None:
    """A request already being served when SIGTERM arrives still completes."""
    import threading

    srv = make_server()
    s3 = srv.client()
    s3.create_bucket(Bucket="inflight")
    body = os.urandom(40 * 1024 * 1024)
    result: dict[str, Any] = {}

    def upload() -> None:
        try:
            result["resp"] = s3.put_object(Bucket="inflight", Key="big", Body=body)
        except Exception as exc:
            result["error"] = exc

    worker = threading.Thread(target=upload)
    worker.start()
    time.sleep(0.3)
    srv.proc.send_signal(signal.SIGTERM)
    worker.join(60)
    srv.stop()
    srv.restart()
    if "resp" in result:
        got = srv.client().get_object(Bucket="inflight", Key="big")["Body"].read()
        assert got == body, "an acknowledged upload was lost or damaged"
    else:
        # Not acknowledged: it must then not exist half-written.
        from botocore.exceptions import ClientError

        with pytest.raises(ClientError):
            srv.client().head_object(Bucket="inflight", Key="big")


@pytest.mark.slow
def test_embedded_postgres(make_server: Any) -> None:
    """Without --database-url loxo runs PostgreSQL inside the data dir, keeps
    data across restarts, and stops that PostgreSQL when it stops."""
    import psutil

    try:
        import pgserver  # noqa: F401
    except ImportError:
        pytest.skip("pgserver is not installed for this Python")
    srv = make_server(embedded=True)
    pgdata = srv.data_dir / "postgres"
    s3 = srv.client()
    s3.create_bucket(Bucket="embedded")
    s3.put_object(Bucket="embedded", Key="k", Body=b"in the embedded database")
    assert pgdata.is_dir()

    def postgres_processes() -> list[int]:
        found = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = proc.info["cmdline"] or []
            if any(str(pgdata) in arg for arg in cmdline) and any(
                "postgres" in arg for arg in cmdline[:1]
            ):
                found.append(proc.info["pid"])
        return found

    assert postgres_processes(), "no PostgreSQL runs on the data dir"
    code = srv.stop(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while postgres_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    leftover = postgres_processes()
    for pid in leftover:  # don't leak it into the rest of the session
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    time.sleep(0.5 if leftover else 0)
    srv.restart()
    assert srv.client().get_object(Bucket="embedded", Key="k")["Body"].read() == (
        b"in the embedded database"
    )
    srv.stop(signal.SIGINT)
    deadline = time.monotonic() + 10
    while postgres_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in postgres_processes():
        os.kill(pid, signal.SIGTERM)
    assert not leftover, (
        f"after SIGTERM (loxo exit code {code}) the embedded PostgreSQL kept running: "
        f"pids {leftover}"
    )
