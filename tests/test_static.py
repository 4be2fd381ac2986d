"""Static checks run as tests, so CI enforces them: ruff, mypy --strict and
the layering of the packages (who may import what)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["gateway", "s3api", "versioning"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_clean() -> None:
    result = _run("ruff", "check", *PACKAGES, "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_clean() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


# -- layering -------------------------------------------------------------------
#
# Who may import what, read from the source (function-local imports included).
# Each rule is also run against a copy of its package with one violating
# module injected, so a rule that cannot fail would show.


@dataclass(frozen=True)
class Rule:
    name: str
    packages: tuple[str, ...]  # paths under ROOT whose modules the rule covers
    forbidden: tuple[str, ...]  # module prefixes they may not import
    allowed: tuple[str, ...] = ()  # exceptions to `forbidden`
    forbidden_attributes: tuple[str, ...] = ()  # attribute names they may not touch
    injected: str = ""  # a module body that breaks the rule


PERSISTENCE = ("asyncpg", "versioning.db", "versioning.catalog", "versioning.migrations")
RULES = (
    Rule(
        "versioning knows nothing of the protocols or HTTP servers",
        ("versioning",),
        ("s3api", "gateway", "starlette", "uvicorn"),
        injected="from s3api.errors import NoSuchKey\n",
    ),
    Rule(
        "request signing imports nothing of the protocols or the domain",
        ("gateway/signing",),
        ("s3api", "gateway.api", "versioning", "starlette"),
        injected="from s3api.errors import SignatureDoesNotMatch\n",
    ),
    Rule(
        "s3api imports nothing from gateway except gateway.signing",
        ("s3api",),
        ("gateway",),
        allowed=("gateway.signing",),
        injected="from gateway.app import LoxoApp\n",
    ),
    Rule(
        "s3api calls domain services, never the persistence layer",
        ("s3api",),
        PERSISTENCE,
        forbidden_attributes=("db", "meta", "pool"),
        injected="def f(ctx):\n    import asyncpg\n    return ctx.versioning.db\n",
    ),
    Rule(
        "the control API calls domain services, never the persistence layer",
        ("gateway/api",),
        PERSISTENCE,
        forbidden_attributes=("db", "meta", "pool"),
        injected="from versioning.db.refs import PgRefs\n",
    ),
    Rule(
        "the control API imports nothing of the S3 protocol but names and input checks",
        ("gateway/api",),
        ("s3api",),
        # It hands out the S3 bucket of a commit or an open commit, whose
        # name only s3api/buckets.py composes, and reads client numbers and
        # text with the same checks (s3api/inputs.py's pure functions).
        allowed=("s3api.buckets", "s3api.inputs"),
        injected="from s3api.errors import S3Error\n",
    ),
    Rule(
        "the Python client imports nothing of the server",
        ("gateway/client",),
        ("gateway", "s3api", "versioning", "asyncpg", "starlette", "uvicorn"),
        allowed=("gateway.client",),
        injected="from gateway.app import LoxoApp\n",
    ),
    Rule(
        "workers import nothing of the server (only the client)",
        ("workers",),
        ("gateway", "s3api", "versioning", "asyncpg", "starlette", "uvicorn"),
        allowed=("gateway.client",),
        injected="import versioning.tree\n",
    ),
)


def _imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _matches(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(rule: Rule, root: Path) -> list[str]:
    found: list[str] = []
    for package in rule.packages:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            where = path.relative_to(root)
            for line, module in _imports(tree):
                if _matches(module, rule.forbidden) and not _matches(module, rule.allowed):
                    found.append(f"{where}:{line} imports {module}")
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and node.attr in rule.forbidden_attributes:
                    found.append(f"{where}:{node.lineno} touches .{node.attr}")
    return found


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_layering(rule: Rule) -> None:
    assert violations(rule, ROOT) == [], rule.name


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_layering_rule_catches_an_injected_violation(rule: Rule, tmp_path: Path) -> None:
    for package in rule.packages:
        source = ROOT / package
        target = tmp_path / package
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.mkdir(parents=True)
    assert violations(rule, tmp_path) == []
    (tmp_path / rule.packages[0] / "injected.py").write_text(rule.injected)
    assert violations(rule, tmp_path), f"{rule.name}: the injected violation went unnoticed"
