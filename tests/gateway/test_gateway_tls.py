"""`loxo serve --tls-cert/--tls-key/--domain`: flag validation, driven as a user would.

Every bad combination exits 2 with one line on stderr naming the flag, before
anything is started (no data dir is created). Serving HTTPS itself is tested
end to end in tests/e2e/test_e2e_https.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway import config as cfgmod

REPO_ROOT = Path(__file__).resolve().parents[2]


def loxo_serve(tmp_path: Path, *args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOXO_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp_path / "data"),
            *args,
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def assert_refused(tmp_path: Path, result: Any, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("loxo: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], result.stderr
    assert not (tmp_path / "data").exists(), "nothing may start before the flags are checked"


def test_help_lists_the_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for option in ("--tls-cert", "--tls-key", "--domain"):
        assert option in result.stdout


@pytest.mark.parametrize("given", ["--tls-cert", "--tls-key"])
def test_cert_and_key_go_together(tmp_path: Path, tls_files: Any, given: str) -> None:
    path = tls_files.cert if given == "--tls-cert" else tls_files.key
    result = loxo_serve(tmp_path, given, str(path))
    assert_refused(tmp_path, result, "set both --tls-cert and --tls-key")


@pytest.mark.parametrize("missing", ["--tls-cert", "--tls-key"])
def test_missing_file(tmp_path: Path, tls_files: Any, missing: str) -> None:
    nowhere = tmp_path / "no-such.pem"
    cert = nowhere if missing == "--tls-cert" else tls_files.cert
    key = nowhere if missing == "--tls-key" else tls_files.key
    result = loxo_serve(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key))
    assert_refused(tmp_path, result, missing, str(nowhere), "cannot read")


def test_directory_instead_of_file(tmp_path: Path, tls_files: Any) -> None:
    folder = tmp_path / "certs"
    folder.mkdir()
    result = loxo_serve(tmp_path, "--tls-cert", str(folder), "--tls-key", str(tls_files.key))
    assert_refused(tmp_path, result, "--tls-cert", "cannot read")


def test_not_a_certificate(tmp_path: Path, tls_files: Any) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    result = loxo_serve(tmp_path, "--tls-cert", str(junk), "--tls-key", str(tls_files.key))
    assert_refused(tmp_path, result, "--tls-cert", "no PEM certificate")


def test_swapped_cert_and_key(tmp_path: Path, tls_files: Any) -> None:
    result = loxo_serve(
        tmp_path, "--tls-cert", str(tls_files.key), "--tls-key", str(tls_files.cert)
    )
    assert_refused(tmp_path, result, "no PEM certificate")


def test_key_of_another_certificate(tmp_path: Path, tls_files: Any) -> None:
    # the CA certificate is a valid certificate, but server.key is not its key
    result = loxo_serve(tmp_path, "--tls-cert", str(tls_files.ca), "--tls-key", str(tls_files.key))
    assert_refused(tmp_path, result, "is not the private key of --tls-cert")


def test_encrypted_key(tmp_path: Path, tls_files: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(tls_files.key.read_bytes(), password=None)
    key = tmp_path / "encrypted.key"
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    result = loxo_serve(tmp_path, "--tls-cert", str(tls_files.cert), "--tls-key", str(key))
    assert_refused(tmp_path, result, "--tls-key", "encrypted")


@pytest.mark.parametrize("domain", ["a..b", "-bad.example", "exa_mple.com", "http://x.com"])
def test_bad_domain(tmp_path: Path, domain: str) -> None:
    result = loxo_serve(tmp_path, "--domain", domain)
    assert_refused(tmp_path, result, "--domain must be a DNS name")


# -- the configuration, without a process --------------------------------------


def test_domains_repeatable_and_comma_separated() -> None:
    assert cfgmod.parse_domains(["S3.Example.com.", "a.test, b.test", "a.test", ""]) == (
        "s3.example.com",
        "a.test",
        "b.test",
    )


def test_build_keeps_tls_and_domains(tmp_path: Path, tls_files: Any) -> None:
    cfg = cfgmod.build(
        "127.0.0.1:9000",
        str(tmp_path),
        None,
        None,
        "us-east-1",
        tls_cert=str(tls_files.cert),
        tls_key=str(tls_files.key),
        domains=["s3.localtest"],
    )
    assert cfg.tls_cert == tls_files.cert.resolve()
    assert cfg.tls_key == tls_files.key.resolve()
    assert cfg.scheme == "https"
    assert cfg.domains == ("s3.localtest",)
    plain = cfgmod.build("127.0.0.1:9000", str(tmp_path), None, None, "us-east-1")
    assert (plain.tls_cert, plain.tls_key, plain.scheme, plain.domains) == (
        None,
        None,
        "http",
        (),
    )
