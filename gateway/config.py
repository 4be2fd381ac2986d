"""Server configuration: the only module that reads the environment."""

from __future__ import annotations

import math
import os
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


class ConfigError(ValueError):
    """A setting is malformed; the message says which and how to fix it."""


@dataclass(frozen=True, slots=True)
class ServeConfig:
    host: str
    port: int
    data_dir: Path
    database_url: str | None  # None: the embedded PostgreSQL inside data_dir
    store_url: str
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = None
    tls_cert: Path | None = None  # PEM certificate chain; set together with tls_key
    tls_key: Path | None = None  # PEM private key
    # Virtual-host-style addressing: a Host of `<bucket>.<domain>` names the bucket.
    domains: tuple[str, ...] = ()
    # Multipart uploads idle this long are aborted by a background task; 0: never.
    upload_expiry_hours: float = 24.0

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert is not None else "http"


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--listen must be HOST:PORT, e.g. 127.0.0.1:9000 (got {value!r})")
    return host.strip("[]") or "127.0.0.1", int(port)


_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def parse_domains(values: Iterable[str]) -> tuple[str, ...]:
    """`--domain` values (each may be comma-separated) as lower-case DNS names."""
    out: list[str] = []
    for value in values:
        for item in value.split(","):
            name = item.strip().lower().rstrip(".")
            if not item.strip():
                continue
            if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
                raise ConfigError(
                    f"--domain must be a DNS name such as s3.example.com (got {item.strip()!r})"
                )
            if name not in out:
                out.append(name)
    return tuple(out)


def check_upload_expiry(hours: float) -> float:
    if not math.isfinite(hours) or hours < 0:
        raise ConfigError(
            f"--upload-expiry-hours must be a number of hours >= 0, 0 to never expire "
            f"(got {hours!r})"
        )
    return float(hours)


def check_tls(cert: str | None, key: str | None) -> tuple[Path, Path] | None:
    """The certificate and key paths, once both are known to load together."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("set both --tls-cert and --tls-key to serve HTTPS, or neither")
    cert_path = Path(cert).expanduser().resolve()
    key_path = Path(key).expanduser().resolve()
    texts: dict[str, bytes] = {}
    for option, path in (("--tls-cert", cert_path), ("--tls-key", key_path)):
        try:
            texts[option] = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{option} {path}: cannot read it ({exc.strerror or exc})") from None
    if b"-----BEGIN CERTIFICATE-----" not in texts["--tls-cert"]:
        raise ConfigError(f"--tls-cert {cert_path}: no PEM certificate in it")
    if b"PRIVATE KEY-----" not in texts["--tls-key"]:
        raise ConfigError(f"--tls-key {key_path}: no PEM private key in it")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    asked_for_password = False

    def no_password() -> bytes:
        nonlocal asked_for_password
        asked_for_password = True
        return b""

    try:
        # A callable password: OpenSSL would otherwise prompt on the terminal.
        context.load_cert_chain(cert_path, key_path, password=no_password)
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        if asked_for_password:
            problem = f"--tls-key {key_path}: the key is encrypted; give loxo an unencrypted key"
        elif reason == "KEY_VALUES_MISMATCH":
            problem = f"--tls-key {key_path} is not the private key of --tls-cert {cert_path}"
        else:
            problem = (
                f"--tls-cert {cert_path} and --tls-key {key_path}: not a usable PEM "
                f"certificate and private key ({reason})"
            )
        raise ConfigError(problem) from None
    return cert_path, key_path


def build(
    listen: str,
    data_dir: str,
    database_url: str | None,
    store: str | None,
    region: str,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    domains: Iterable[str] = (),
    upload_expiry_hours: float = 24.0,
) -> ServeConfig:
    host, port = parse_listen(listen)
    tls = check_tls(tls_cert, tls_key)
    root = Path(data_dir).expanduser().resolve()
    access = os.environ.get("LOXO_ACCESS_KEY") or None
    secret = os.environ.get("LOXO_SECRET_KEY") or None
    if (access is None) != (secret is None):
        raise ConfigError("set both LOXO_ACCESS_KEY and LOXO_SECRET_KEY, or neither")
    return ServeConfig(
        host=host,
        port=port,
        data_dir=root,
        database_url=database_url or os.environ.get("LOXO_DATABASE_URL") or None,
        store_url=store or f"file://{root / 'chunks'}",
        region=region,
        access_key=access,
        secret_key=secret,
        tls_cert=tls[0] if tls else None,
        tls_key=tls[1] if tls else None,
        domains=parse_domains(domains),
        upload_expiry_hours=check_upload_expiry(upload_expiry_hours),
    )
