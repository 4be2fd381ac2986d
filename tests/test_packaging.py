"""loxo as a user installs it: the wheel, in a fresh venv, run from outside the checkout.

Every other test runs this checkout's code, so they all passed while
`pip install .` (no -e) installed a loxo that failed at once with ImportError:
pyproject's package list had left out subpackages. This test copies the
checkout, builds the wheel from the copy, checks what it holds (every package
under gateway/, s3api/, versioning/, workers/ with all their modules, the
migrations' SQL, the LICENSE; no tests, no benchmarks), installs it with its
dependencies into a new venv under tmp_path, imports every installed module,
and runs `loxo --help`, `loxo version` and `loxo serve` (on a fresh database)
with one PUT and one GET through boto3, then SIGTERM and a clean exit.

Nothing may come from the checkout: the venv has no access to the test venv's
packages, every command runs with cwd=tmp_path and without PYTHONPATH, and the
imported modules are checked to lie inside the new venv.

pip runs with its own configuration: its cache keeps this fast after the first
run, and PIP_FIND_LINKS / PIP_NO_INDEX point it at a local wheelhouse. Without
PyPI or such a wheelhouse the test fails in CI and is skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from conftest import REPO_ROOT, LoxoServer, fail_or_skip

# The top-level packages the wheel must ship (setuptools' packages.find `include`);
# a missing directory (workers/ before it exists) is fine.
PACKAGE_ROOTS = ("gateway", "s3api", "versioning", "workers")
# Not copied for the build: VCS data, environments, caches, build output, local data.
COPY_IGNORE = {".git", ".venv", ".venv-boto3", "build", "dist", "loxo-data", "data"}
# Variables that would let the checkout (or another tree) into the venv's imports.
LEAKY_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
# pip output that means "no index reachable", not "loxo's packaging is broken".
OFFLINE_MARKERS = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "No matching distribution found for setuptools",
)

IMPORT_ALL = r"""
import importlib, json, pkgutil, sys
roots = sys.argv[1:]
found = {}
for root in roots:
    try:
        package = importlib.import_module(root)
    except ModuleNotFoundError as exc:
        if exc.name == root:  # workers/ before it exists
            continue
        raise
    found[root] = package.__file__
    for info in pkgutil.walk_packages(package.__path__, root + "."):
        found[info.name] = importlib.import_module(info.name).__file__
print(json.dumps(found))
"""


def _clean_env() -> dict[str, str]:
    """Our environment without anything that would let the checkout leak in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LOXO_") and k not in LEAKY_ENV}


def _run(
    cmd: Sequence[str | Path], cwd: Path, what: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if proc.returncode != 0:
        output = f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        if any(marker in proc.stdout + proc.stderr for marker in OFFLINE_MARKERS):
            fail_or_skip(f"{what}: no package index reachable (set PIP_FIND_LINKS?)\n{output}")
        pytest.fail(f"{what} exited with {proc.returncode}\n{output}", pytrace=False)
    return proc


def _copy_ignore(directory: str, names: list[str]) -> set[str]:
    ignored = {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".egg-info"))}
    if Path(directory) == REPO_ROOT:
        ignored |= {n for n in names if n in COPY_IGNORE or n.endswith("_cache")}
    return ignored


def _expected_files() -> tuple[set[str], set[str]]:
    """The checkout's package modules and package data, as paths inside the wheel."""
    modules: set[str] = set()
    for root in PACKAGE_ROOTS:
        for path in (REPO_ROOT / root).rglob("*.py") if (REPO_ROOT / root).is_dir() else ():
            if "__pycache__" not in path.parts:  # every module, in a package or not
                modules.add(path.relative_to(REPO_ROOT).as_posix())
    sql = {
        p.relative_to(REPO_ROOT).as_posix()
        for p in (REPO_ROOT / "versioning" / "migrations").glob("*.sql")
    }
    return modules, sql


def _build_wheel(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(REPO_ROOT, src, ignore=_copy_ignore, symlinks=True)
    dist = tmp_path / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, src],
        tmp_path,
        "building the wheel",
    )
    wheels = list(dist.glob("loxo-*.whl"))
    assert len(wheels) == 1, f"expected one loxo wheel, got {wheels}"
    return wheels[0]


def _check_wheel(wheel: Path, version: str) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    dist_info = f"loxo-{version}.dist-info"
    top = {n.split("/", 1)[0] for n in names}
    assert top <= {*PACKAGE_ROOTS, dist_info}, f"unexpected top-level entries: {sorted(top)}"
    modules, sql = _expected_files()
    assert "gateway/cli.py" in modules
    assert sql, "no migrations found in the checkout"
    missing = sorted((modules | sql) - names)
    assert not missing, f"the wheel lacks {missing}"
    assert any(
        n.startswith(f"{dist_info}/") and n.rsplit("/", 1)[-1] == "LICENSE" for n in names
    ), "the wheel carries no LICENSE"


def test_wheel_installs_and_serves(
    tmp_path: Path, fresh_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    wheel = _build_wheel(tmp_path)
    _check_wheel(wheel, version)

    # A venv on the base interpreter, without the test venv's packages; the test
    # venv's pip installs into it (--python), so the venv needs no pip of its own.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, "creating the venv")
    python = venv / "bin" / "python"
    loxo = venv / "bin" / "loxo"
    _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", wheel],
        tmp_path,
        "installing the wheel and its dependencies",
        timeout=480,
    )

    # Every module of every installed package imports, from the venv.
    found = json.loads(
        _run([python, "-c", IMPORT_ALL, *PACKAGE_ROOTS], tmp_path, "importing loxo").stdout
    )
    assert "gateway.cli" in found and "versioning.migrations" in found, found
    outside = {m: f for m, f in found.items() if not Path(f).is_relative_to(venv)}
    assert not outside, f"modules imported from outside the venv: {outside}"

    help_text = _run([loxo, "--help"], tmp_path, "loxo --help").stdout
    assert "serve" in help_text, help_text
    assert _run([loxo, "version"], tmp_path, "loxo version").stdout.strip() == version

    # The installed server on a fresh database and a data dir under tmp_path. LoxoServer
    # runs it with our environment (here without LEAKY_ENV) minus any LOXO_* settings,
    # plus LOXO_ACCESS_KEY / LOXO_SECRET_KEY: its test credentials.
    for name in LEAKY_ENV:
        monkeypatch.delenv(name, raising=False)
    server = LoxoServer(program=[str(loxo)], cwd=tmp_path)
    try:
        server.start(tmp_path / "data", fresh_database())
        s3 = server.client()
        s3.create_bucket(Bucket="packaged")
        body = b"installed from the wheel\n"
        put = s3.put_object(Bucket="packaged", Key="hello.txt", Body=body)
        assert len(put["VersionId"]) == 32
        assert s3.get_object(Bucket="packaged", Key="hello.txt")["Body"].read() == body
    finally:
        code = server.stop()
    log = server.log_text()
    assert code == 0, f"loxo serve exited with {code} after SIGTERM:\n{log[-4000:]}"
    assert "Traceback" not in log, log[-4000:]
