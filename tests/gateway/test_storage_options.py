"""`loxo serve` storage options and `loxo gc` / `loxo fsck` argument errors:
each bad value gets one clear line and exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, parse_size
from tests.conftest import loxo_cli as loxo

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4096", 4096),
        ("64KiB", 65536),
        ("64k", 65536),
        ("1MiB", 1 << 20),
        ("1 MB", 1 << 20),
        ("10GiB", 10 << 30),
        ("0", 0),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size("--x", text) == size


@pytest.mark.parametrize("text", ["", "1.5MiB", "-1", "12 parsecs", "MiB"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ConfigError, match="--x must be a size"):
        parse_size("--x", text)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chunk-avg", "8MiB"], "--chunk-avg must be between 256 and 4MiB"),
        (["--chunk-min", "2MiB", "--chunk-avg", "1MiB"], "--chunk-min must be between"),
        (["--chunk-avg", "2MiB", "--chunk-max", "1MiB"], "--chunk-min <= --chunk-avg"),
        (["--inline-max", "2MiB"], "--inline-max must be between 0"),
        (["--cache-size", "lots"], "--cache-size must be a size"),
        (["--gc-grace-minutes", "1"], "--gc-grace-minutes must be at least 5"),
        (["--gc-interval-hours", "-1"], "--gc-interval-hours must be a number"),
        (["--ingest-memory", "x"], "--ingest-memory must be a size"),
        (["--store", "gs://bucket"], "unsupported chunk store URL"),
    ],
)
def test_serve_refuses_bad_storage_options(tmp_path: Path, args: list[str], message: str) -> None:
    done = loxo("serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"), *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_gc_refuses_a_negative_grace(tmp_path: Path) -> None:
    done = loxo("gc", "--grace-minutes", "-1", "--data-dir", str(tmp_path / "d"))
    assert done.returncode == 2 and "--grace-minutes must be >= 0" in done.stderr


def test_gc_and_fsck_explain_an_unreachable_database(tmp_path: Path) -> None:
    for command in ("gc", "fsck"):
        done = loxo(
            command,
            "--data-dir",
            str(tmp_path / "d"),
            "--database-url",
            "postgresql://postgres@127.0.0.1:1/none",
        )
        assert done.returncode == 2, done.stderr
        assert "cannot use the PostgreSQL database at 127.0.0.1:1/none" in done.stderr
        assert "Traceback" not in done.stderr


def test_help_has_examples() -> None:
    for command in ("gc", "fsck"):
        done = loxo(command, "--help")
        assert done.returncode == 0 and "Example" in done.stdout
