"""Server configuration: the only module that reads the environment."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.executors.manifests import KubernetesSettings
from versioning.chunkstore import parse_store_url


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
    # The operator's view (docs/operations.md): log level and format (json,
    # human, or auto: human on a terminal), one access-log line per request,
    # and who may read /_loxo/metrics (public, or token: a bearer token).
    log_level: str = "info"
    log_format: str = "auto"
    access_log: bool = True
    metrics_auth: str = "public"
    metrics_token: str | None = None  # LOXO_METRICS_TOKEN, with metrics_auth "token"
    # Multipart uploads idle this long are aborted by a background task; 0: never.
    upload_expiry_hours: float = 24.0
    # The S3 API endpoint of an s3:// chunk store (None: AWS, or AWS_ENDPOINT_URL).
    store_endpoint: str | None = None
    # Local disk cache of an s3:// chunk store's hot chunks; 0 disables it.
    cache_bytes: int = 10 * 1024**3
    # Bodies up to this many bytes are kept in their metadata row, not as chunks.
    inline_max: int = 16 * 1024
    # Content-defined chunk sizes (bytes): average, minimum, maximum.
    chunk_avg: int = 1024 * 1024
    chunk_min: int = 256 * 1024
    chunk_max: int = 4 * 1024 * 1024
    # Background garbage collection every this many hours (0: never), sparing
    # anything touched within the grace period.
    gc_interval_hours: float = 6.0
    gc_grace_minutes: float = 60.0
    # What bodies being written may hold in memory at once, all uploads together.
    ingest_memory: int = 96 * 1024**2
    # Open commits nothing was written to for this long are aborted (unless
    # started with their own limit).
    open_commit_idle_minutes: float = 60.0
    # Deleted repos and branches stay restorable this long (0: deleted at once).
    trash_days: float = 7.0
    # Local pipeline workers `loxo serve` starts (each a `loxo worker` process
    # on this machine, over HTTP like any other); 0: none.
    workers: int = 2
    # Datums each local worker runs at once.
    worker_parallel: int = 2
    # A datum lease lasts this long without a heartbeat (a dead worker's datum
    # goes to another worker after it).
    lease_seconds: float = 30.0
    # The Kubernetes executor's settings (--executor kubernetes); None: the
    # local executor (`workers` local processes).
    kubernetes: KubernetesSettings | None = None

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

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


LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "human")
METRICS_AUTH = ("public", "token")


def check_observability(
    log_level: str, log_format: str, metrics_auth: str, metrics_token: str | None
) -> tuple[str, str, str, str | None]:
    """--log-level, --log-format and --metrics-auth (with LOXO_METRICS_TOKEN)."""
    level, fmt, auth = log_level.lower(), log_format.lower(), metrics_auth.lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"--log-level must be one of {', '.join(LOG_LEVELS)} (got {log_level!r})")
    if fmt not in LOG_FORMATS:
        raise ConfigError(
            f"--log-format must be one of {', '.join(LOG_FORMATS)} (got {log_format!r})"
        )
    if auth not in METRICS_AUTH:
        raise ConfigError(
            f"--metrics-auth must be one of {', '.join(METRICS_AUTH)} (got {metrics_auth!r})"
        )
    if auth == "token" and not metrics_token:
        raise ConfigError(
            "--metrics-auth token needs the token in LOXO_METRICS_TOKEN (scrapers send it as "
            "Authorization: Bearer <token>)"
        )
    return level, fmt, auth, metrics_token if auth == "token" else None


def check_upload_expiry(hours: float) -> float:
    if not math.isfinite(hours) or hours < 0:
        raise ConfigError(
            f"--upload-expiry-hours must be a number of hours >= 0, 0 to never expire "
            f"(got {hours!r})"
        )
    return float(hours)


def check_open_commit_idle(minutes: float) -> float:
    if not math.isfinite(minutes) or minutes <= 0:
        raise ConfigError(f"--open-commit-idle-minutes must be a number > 0 (got {minutes!r})")
    return float(minutes)


def check_workers(count: int) -> int:
    if not 0 <= count <= 256:
        raise ConfigError(f"--workers must be from 0 to 256, not {count}")
    return count


def check_worker_parallel(count: int) -> int:
    if not 1 <= count <= 64:
        raise ConfigError(f"--worker-parallel must be from 1 to 64, not {count}")
    return count


def check_lease_seconds(seconds: float) -> float:
    if not 1 <= seconds <= 3600:
        raise ConfigError(f"--lease-seconds must be from 1 to 3600, not {seconds:g}")
    return seconds


def check_trash_days(days: float) -> float:
    if not math.isfinite(days) or days < 0:
        raise ConfigError(
            f"--trash-days must be a number of days >= 0, 0 to delete at once (got {days!r})"
        )
    return float(days)


# An in-flight upload re-touches its chunks every leases.KEEPALIVE_SECONDS
# (2 min); a background gc with a shorter grace could take them.
MIN_SERVER_GRACE_MINUTES = 5.0


def check_gc(interval_hours: float, grace_minutes: float) -> tuple[float, float]:
    if not math.isfinite(interval_hours) or interval_hours < 0:
        raise ConfigError(
            f"--gc-interval-hours must be a number of hours >= 0, 0 for no background gc "
            f"(got {interval_hours!r})"
        )
    if not math.isfinite(grace_minutes) or grace_minutes < MIN_SERVER_GRACE_MINUTES:
        raise ConfigError(
            f"--gc-grace-minutes must be at least {MIN_SERVER_GRACE_MINUTES:g}: uploads in "
            f"flight re-touch their chunks every 2 minutes (got {grace_minutes!r})"
        )
    return float(interval_hours), float(grace_minutes)


_SIZE = re.compile(r"^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
}


def parse_size(option: str, value: str) -> int:
    """A byte count such as 4096, 64KiB, 1MiB or 10GiB (binary units)."""
    m = _SIZE.match(value)
    if not m:
        raise ConfigError(f"{option} must be a size such as 4096, 64KiB or 1MiB (got {value!r})")
    return int(m.group(1)) * _UNITS[(m.group(2) or "").lower()]


def check_chunking(avg: int, lo: int, hi: int, inline_max: int) -> None:
    """FastCDC's own bounds (pyfastcdc), said in our option names."""
    problems = []
    if not 256 <= avg <= 4 * 1024**2:
        problems.append("--chunk-avg must be between 256 and 4MiB")
    if not 64 <= lo <= 1024**2:
        problems.append("--chunk-min must be between 64 and 1MiB")
    if not 1024 <= hi <= 16 * 1024**2:
        problems.append("--chunk-max must be between 1KiB and 16MiB")
    if not lo <= avg <= hi:
        problems.append("sizes must satisfy --chunk-min <= --chunk-avg <= --chunk-max")
    if not 0 <= inline_max <= 1024**2:
        problems.append("--inline-max must be between 0 (off) and 1MiB")
    if problems:
        raise ConfigError("; ".join(problems))


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
    log_level: str = "info",
    log_format: str = "auto",
    access_log: bool = True,
    metrics_auth: str = "public",
    upload_expiry_hours: float = 24.0,
    store_endpoint: str | None = None,
    cache_size: str = "10GiB",
    inline_max: str = "16KiB",
    chunk_avg: str = "1MiB",
    chunk_min: str = "256KiB",
    chunk_max: str = "4MiB",
    gc_interval_hours: float = 6.0,
    gc_grace_minutes: float = 60.0,
    ingest_memory: str = "96MiB",
    open_commit_idle_minutes: float = 60.0,
    trash_days: float = 7.0,
    workers: int = 2,
    lease_seconds: float = 30.0,
    worker_parallel: int = 2,
    kubernetes: KubernetesSettings | None = None,
) -> ServeConfig:
    host, port = parse_listen(listen)
    sizes = {
        "--cache-size": parse_size("--cache-size", cache_size),
        "--inline-max": parse_size("--inline-max", inline_max),
        "--chunk-avg": parse_size("--chunk-avg", chunk_avg),
        "--chunk-min": parse_size("--chunk-min", chunk_min),
        "--chunk-max": parse_size("--chunk-max", chunk_max),
        "--ingest-memory": parse_size("--ingest-memory", ingest_memory),
    }
    check_chunking(
        sizes["--chunk-avg"], sizes["--chunk-min"], sizes["--chunk-max"], sizes["--inline-max"]
    )
    gc_interval, gc_grace = check_gc(gc_interval_hours, gc_grace_minutes)
    if store is not None:
        try:
            parse_store_url(store)
        except ValueError as exc:
            raise ConfigError(f"--store: {exc}") from None
    tls = check_tls(tls_cert, tls_key)
    observability = check_observability(
        log_level, log_format, metrics_auth, os.environ.get("LOXO_METRICS_TOKEN") or None
    )
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
        log_level=observability[0],
        log_format=observability[1],
        access_log=access_log,
        metrics_auth=observability[2],
        metrics_token=observability[3],
        upload_expiry_hours=check_upload_expiry(upload_expiry_hours),
        store_endpoint=store_endpoint or None,
        cache_bytes=sizes["--cache-size"],
        inline_max=sizes["--inline-max"],
        chunk_avg=sizes["--chunk-avg"],
        chunk_min=sizes["--chunk-min"],
        chunk_max=sizes["--chunk-max"],
        gc_interval_hours=gc_interval,
        gc_grace_minutes=gc_grace,
        ingest_memory=sizes["--ingest-memory"],
        open_commit_idle_minutes=check_open_commit_idle(open_commit_idle_minutes),
        trash_days=check_trash_days(trash_days),
        workers=check_workers(workers),
        worker_parallel=check_worker_parallel(worker_parallel),
        lease_seconds=check_lease_seconds(lease_seconds),
        kubernetes=kubernetes,
    )


# -- executors (docs/design/executors.md) -------------------------------------------

EXECUTORS = ("local", "kubernetes")
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$")


def check_executor(
    executor: str,
    region: str = "us-east-1",
    namespace: str | None = None,
    service_account: str | None = None,
    worker_image: str | None = None,
    credentials_secret: str | None = None,
    endpoint: str | None = None,
) -> KubernetesSettings | None:
    """The Kubernetes executor's settings (None for `local`); the --k8s-*
    options are refused with the local executor, which would ignore them."""
    given = {
        "--k8s-namespace": namespace,
        "--k8s-service-account": service_account,
        "--k8s-worker-image": worker_image,
        "--k8s-credentials-secret": credentials_secret,
        "--k8s-endpoint": endpoint,
    }
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor must be local or kubernetes, not {executor!r}")
    if executor == "local":
        named = [option for option, value in given.items() if value is not None]
        if named:
            raise ConfigError(f"{', '.join(named)}: only with --executor kubernetes")
        return None
    if not endpoint or not re.match(r"^https?://[^/\s]+", endpoint):
        raise ConfigError(
            "--executor kubernetes needs --k8s-endpoint, loxo's URL as pods reach it "
            "(e.g. http://loxo.loxo.svc:9000; never 127.0.0.1, which is the pod itself)"
        )
    settings = KubernetesSettings(endpoint=endpoint.rstrip("/"), region=region)
    names = {
        "--k8s-namespace": (namespace, _DNS_LABEL, "namespace"),
        "--k8s-service-account": (service_account, _DNS_SUBDOMAIN, "service_account"),
        "--k8s-credentials-secret": (credentials_secret, _DNS_SUBDOMAIN, "credentials_secret"),
    }
    changes: dict[str, str] = {}
    for option, (value, pattern, attr) in names.items():
        if value is None:
            continue
        if not pattern.match(value):
            raise ConfigError(f"{option} {value!r} is not a Kubernetes object name")
        changes[attr] = value
    if worker_image is not None:
        if not worker_image.strip() or any(c.isspace() for c in worker_image):
            raise ConfigError(f"--k8s-worker-image {worker_image!r} is not an image reference")
        changes["worker_image"] = worker_image
    return dataclasses.replace(settings, **changes)
