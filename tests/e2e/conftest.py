"""Fixtures shared by the client-compatibility tests (tests/e2e/test_clients_*.py).

Every test there runs one real S3 client (a Debian binary, or a Python library
from the `test` extra) against a live loxo server and checks byte-exact round
trips. The helpers are fixtures, not an importable module.

Note on `from conftest import ...`: conftest.py files outside packages all share
the module name `conftest`, so loading this one replaces `sys.modules["conftest"]`
with it. Test modules in this directory import names from tests/conftest.py
(`from conftest import LoxoServer`), so `pytest_pycollect_makemodule` below puts
the root conftest back before each of them is imported.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT_CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"
MiB = 1024 * 1024


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> None:
    root = parent.config.pluginmanager.get_plugin(str(ROOT_CONFTEST))
    if isinstance(root, types.ModuleType):
        sys.modules["conftest"] = root


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _fail_or_skip(message: str) -> None:
    if _in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(name="fail_or_skip", scope="session")
def fail_or_skip_fixture() -> Callable[[str], None]:
    """A missing prerequisite: fails in CI, skips elsewhere (like require_tool)."""
    return _fail_or_skip


@pytest.fixture(name="require_module", scope="session")
def require_module_fixture() -> Callable[[str], Any]:
    """Import a Python client from the `test` extra; missing fails in CI, skips elsewhere."""

    def need(name: str) -> Any:
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            _fail_or_skip(f"{name} is not installed ({exc}); `./dev test` installs the test extra")

    return need


@pytest.fixture(name="require_binary", scope="session")
def require_binary_fixture() -> Callable[[str], str]:
    """require_tool for session- and module-scoped fixtures: a binary on PATH."""

    def need(name: str) -> str:
        path = shutil.which(name)
        if path is None:
            _fail_or_skip(f"{name} is not installed; `./dev test` installs it when run as root")
        return str(path)

    return need


# --------------------------------------------------------------------------- servers


@pytest.fixture(params=["http", "https"])
def loxo(request: pytest.FixtureRequest) -> Any:
    """The shared HTTP server, then the shared HTTPS server (test CA: .ca_bundle)."""
    return request.getfixturevalue("server" if request.param == "http" else "https_server")


@pytest.fixture(name="make_bucket")
def make_bucket_fixture() -> Callable[..., str]:
    """Factory: make_bucket(server, prefix) creates a unique bucket (repo) there with boto3."""
    import uuid

    def make(server: Any, prefix: str = "cli") -> str:
        name = f"{prefix}-{os.getpid() % 10000}-{uuid.uuid4().hex[:10]}"
        server.client().create_bucket(Bucket=name)
        return name

    return make


@pytest.fixture(name="bucket_objects")
def bucket_objects_fixture() -> Callable[..., dict[str, bytes]]:
    """bucket_objects(server, bucket, prefix="") -> {key: body}, read with boto3."""

    def read(server: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
        s3 = server.client()
        out: dict[str, bytes] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                out[key] = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return out

    return read


# --------------------------------------------------------------------------- local trees


def _tree_files(big: int, seed: str) -> dict[str, bytes]:
    def rnd(n: int, tag: str) -> bytes:
        # deterministic pseudo-random bytes (fast enough for a few MiB)
        out = bytearray()
        counter = 0
        while len(out) < n:
            out += hashlib.sha512(f"{seed}/{tag}/{counter}".encode()).digest()
            counter += 1
        return bytes(out[:n])

    files = {
        "top.txt": f"top level file {seed}\n".encode(),
        "empty.dat": b"",
        "docs/readme.md": b"# readme\n" + rnd(3000, "readme").hex().encode(),
        "docs/with space.txt": b"a name with a space\n",
        "docs/unicode-\u00e9\u00e8.txt": "caf\u00e9 na\u00efve\n".encode(),
        "data/a/one.bin": rnd(100_000, "one"),
        "data/a/two.bin": rnd(777, "two"),
        "data/b/deep/three.bin": rnd(1_500_000, "three"),
    }
    if big:
        files["data/big.bin"] = rnd(big, "big")
    return files


@pytest.fixture(name="make_tree")
def make_tree_fixture() -> Callable[..., dict[str, bytes]]:
    """make_tree(root, big=0, seed="t") writes a small tree of files (nested
    dirs, a space and non-ASCII in names, an empty file, binary data; plus
    data/big.bin of `big` bytes when asked) and returns {posix relpath: bytes}."""

    def make(root: Path, big: int = 0, seed: str = "t") -> dict[str, bytes]:
        files = _tree_files(big, seed)
        for rel, data in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return files

    return make


@pytest.fixture(name="read_tree")
def read_tree_fixture() -> Callable[[Path], dict[str, bytes]]:
    """read_tree(root) -> {posix relpath: bytes} of every regular file below root."""

    def read(root: Path) -> dict[str, bytes]:
        return {
            p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()
        }

    return read


@pytest.fixture(name="same_tree")
def same_tree_fixture() -> Callable[[Mapping[str, bytes], Mapping[str, bytes]], None]:
    """same_tree(actual, expected): equal key sets and byte-equal bodies, with a
    readable message (names and sizes, not the bytes) when they differ."""

    def check(actual: Mapping[str, bytes], expected: Mapping[str, bytes]) -> None:
        missing = sorted(set(expected) - set(actual))
        extra = sorted(set(actual) - set(expected))
        differ = sorted(
            f"{k} ({len(actual[k])} bytes, expected {len(expected[k])})"
            for k in set(actual) & set(expected)
            if actual[k] != expected[k]
        )
        assert not (missing or extra or differ), (
            f"missing: {missing}\nunexpected: {extra}\ndifferent content: {differ}"
        )

    return check


# --------------------------------------------------------------------------- processes


@pytest.fixture(name="client_env")
def client_env_fixture(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., dict[str, str]]:
    """client_env(**extra): our environment without AWS_*/RCLONE_* settings and
    with an empty HOME, so no user configuration leaks into a client."""
    home = tmp_path_factory.mktemp("client-home")

    def env(**extra: str) -> dict[str, str]:
        out = {
            k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_", "S3CMD"))
        }
        out.update(HOME=str(home), AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="")
        out.update(extra)
        return out

    return env


@pytest.fixture(name="run")
def run_fixture() -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """run(cmd, env=..., server=..., check=True, timeout=300, cwd=None, input=None):
    run a client command (stdin: `input`, else nothing); when `check` and it
    exits non-zero, fail with its output and the tail of the server's log."""

    def go(
        cmd: Sequence[str],
        *,
        env: Mapping[str, str],
        server: Any = None,
        check: bool = True,
        timeout: float = 300,
        cwd: Path | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
        proc = subprocess.run(
            list(cmd),
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            **stdin,  # type: ignore[arg-type]
        )
        if check and proc.returncode != 0:
            log = server.log_text()[-3000:] if server is not None else ""
            pytest.fail(
                f"`{' '.join(map(str, cmd))}` exited with {proc.returncode}\n"
                f"--- stderr ---\n{proc.stderr[-4000:]}\n--- stdout ---\n{proc.stdout[-2000:]}\n"
                f"--- server log (tail) ---\n{log}",
                pytrace=False,
            )
        return proc

    yield go
