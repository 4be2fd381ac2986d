"""The `loxo` command line."""

from __future__ import annotations

import typer
import typer.core

from gateway import commands
from gateway import config as cfgmod

_display_type = typer.core.TyperOption.display_type_rich


def _flag_without_type(self: typer.core.TyperOption, ctx: typer.Context) -> str | None:
    """Typer's rich help gives flags (`--json`, `--help`) a `<bool>` type, as
    if they took a value: a flag shows none."""
    return None if self.is_flag else _display_type(self, ctx)


setattr(typer.core.TyperOption, "display_type_rich", _flag_without_type)  # noqa: B010

app = typer.Typer(
    name="loxo",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="loxo: an S3-compatible server where every write is a commit. `loxo serve` runs "
    "it; the other commands drive a running one (see `loxo config set`).",
    no_args_is_help=True,
    add_completion=False,
    epilog="Examples: loxo serve  |  loxo config set --endpoint http://127.0.0.1:9000 "
    "--from-data-dir ./loxo-data  |  loxo repo create images  |  "
    "loxo put ./labels images@main:labels  |  loxo log images@main",
)


@app.command(
    epilog="Example: loxo serve --listen 127.0.0.1:9000 --data-dir ./loxo-data  "
    "HTTPS: loxo serve --tls-cert cert.pem --tls-key key.pem --domain s3.example.com",
)
def serve(
    listen: str = typer.Option("127.0.0.1:9000", help="HOST:PORT to listen on."),
    data_dir: str = typer.Option(
        "./loxo-data", help="Where chunks, credentials and the embedded database live."
    ),
    database_url: str | None = typer.Option(
        None,
        help="An external PostgreSQL, e.g. postgresql://postgres@127.0.0.1:5432/loxo. "
        "Default: an embedded PostgreSQL inside the data dir.",
    ),
    store: str | None = typer.Option(
        None, help="Chunk store URL. Default: file://<data-dir>/chunks."
    ),
    region: str = typer.Option("us-east-1", help="The region loxo reports to clients."),
    tls_cert: str | None = typer.Option(
        None,
        help="PEM certificate (chain) file: serve HTTPS instead of HTTP. Needs --tls-key.",
    ),
    tls_key: str | None = typer.Option(
        None, help="PEM private key file of --tls-cert (unencrypted)."
    ),
    domain: list[str] = typer.Option(  # noqa: B008 - typer's way to declare a repeatable option
        [],
        help="Serve virtual-host-style requests: Host <bucket>.<DOMAIN> addresses that "
        "bucket. Repeatable or comma-separated. Path-style requests keep working.",
    ),
    log_level: str = typer.Option(
        "info", help="Log records at this level and above: debug, info, warning or error."
    ),
    log_format: str = typer.Option(
        "auto",
        help="Logs on stderr as json (one object per line), human, or auto: human on a "
        "terminal, json otherwise.",
    ),
    access_log: bool = typer.Option(
        True, help="Log one line per request (logger loxo.access, level info)."
    ),
    metrics_auth: str = typer.Option(
        "public",
        help="Who may read /_loxo/metrics: public, or token (Authorization: Bearer "
        "$LOXO_METRICS_TOKEN).",
    ),
    upload_expiry_hours: float = typer.Option(
        24.0,
        help="Abort multipart uploads that have been idle (no new part) this many hours; "
        "0 keeps them forever.",
    ),
    store_endpoint: str | None = typer.Option(
        None,
        help="S3 endpoint URL of an s3:// --store (MinIO, Ceph, moto...). Default: AWS, or "
        "$AWS_ENDPOINT_URL. Credentials come from the standard AWS environment variables.",
    ),
    cache_size: str = typer.Option(
        "10GiB", help="Local disk cache for an s3:// --store's hot chunks (0 disables it)."
    ),
    inline_max: str = typer.Option(
        "16KiB", help="Keep bodies up to this size in the metadata row instead of as chunks."
    ),
    chunk_avg: str = typer.Option("1MiB", help="Average content-defined chunk size."),
    chunk_min: str = typer.Option("256KiB", help="Minimum chunk size."),
    chunk_max: str = typer.Option("4MiB", help="Maximum chunk size."),
    gc_interval_hours: float = typer.Option(
        6.0, help="Collect garbage in the background this often; 0 never."
    ),
    gc_grace_minutes: float = typer.Option(
        60.0, help="Background gc spares anything written or re-used this recently (>= 5)."
    ),
    ingest_memory: str = typer.Option(
        "96MiB",
        help="Memory that bodies being uploaded may hold, all together. Each upload over "
        "256 KiB takes 15 MiB of it, a multipart part 30 (at --chunk-max 4MiB); more "
        "wait, reading nothing.",
    ),
    open_commit_idle_minutes: float = typer.Option(
        60.0,
        help="Abort open commits (loxo commit start) nothing was written to for this long, "
        "unless started with their own --idle-minutes.",
    ),
    trash_days: float = typer.Option(
        7.0,
        help="Keep deleted repos and branches restorable (loxo repo restore, loxo branch "
        "restore) this many days, fractions allowed; 0 deletes at once.",
    ),
    workers: int = typer.Option(
        2,
        help="Start this many local pipeline workers (loxo worker processes on this machine); "
        "0 starts none (run `loxo worker --endpoint URL` elsewhere).",
    ),
    worker_parallel: int = typer.Option(
        2,
        help="Datums each local worker runs at once (small datums: their transfers "
        "overlap; heavy ones: 1 per core is plenty).",
    ),
    lease_seconds: float = typer.Option(
        30.0,
        help="A worker holds a datum this long without a heartbeat; then (a dead worker) "
        "another worker takes it.",
    ),
    executor: str = typer.Option(
        "local",
        help="What runs pipeline workers: local (--workers processes here) or kubernetes "
        "(one Kubernetes Job per loxo job; Kubernetes credentials from the pod's service "
        "account, else KUBECONFIG).",
    ),
    k8s_namespace: str | None = typer.Option(
        None, help="Kubernetes executor: the namespace of its Jobs (default: default)."
    ),
    k8s_service_account: str | None = typer.Option(
        None,
        help="Kubernetes executor: the pods' service account (default: the namespace's, "
        "its token not mounted).",
    ),
    k8s_worker_image: str | None = typer.Option(
        None,
        help="Kubernetes executor: the image of pipelines without transform.image; it must "
        "have `loxo` (default: loxo:latest, this repo's Dockerfile).",
    ),
    k8s_credentials_secret: str | None = typer.Option(
        None,
        help="Kubernetes executor: the Secret with the keys LOXO_ACCESS_KEY and "
        "LOXO_SECRET_KEY the pods use (default: loxo-credentials).",
    ),
    k8s_endpoint: str | None = typer.Option(
        None,
        help="Kubernetes executor: loxo's URL as pods reach it, e.g. http://loxo.loxo.svc:9000 "
        "(required with --executor kubernetes).",
    ),
) -> None:
    """Serve the S3 API (and loxo's control endpoints) until SIGINT or SIGTERM."""
    try:
        cfg = cfgmod.build(
            listen,
            data_dir,
            database_url,
            store,
            region,
            tls_cert=tls_cert,
            tls_key=tls_key,
            domains=domain,
            log_level=log_level,
            log_format=log_format,
            access_log=access_log,
            metrics_auth=metrics_auth,
            upload_expiry_hours=upload_expiry_hours,
            store_endpoint=store_endpoint,
            cache_size=cache_size,
            inline_max=inline_max,
            chunk_avg=chunk_avg,
            chunk_min=chunk_min,
            chunk_max=chunk_max,
            gc_interval_hours=gc_interval_hours,
            gc_grace_minutes=gc_grace_minutes,
            ingest_memory=ingest_memory,
            open_commit_idle_minutes=open_commit_idle_minutes,
            trash_days=trash_days,
            workers=workers,
            lease_seconds=lease_seconds,
            worker_parallel=worker_parallel,
            kubernetes=cfgmod.check_executor(
                executor,
                region,
                k8s_namespace,
                k8s_service_account,
                k8s_worker_image,
                k8s_credentials_secret,
                k8s_endpoint,
            ),
        )
    except cfgmod.ConfigError as exc:
        typer.echo(f"loxo: {exc}", err=True)
        raise typer.Exit(2) from None
    from gateway.server import serve as run_server  # the client commands never load it

    raise typer.Exit(run_server(cfg))


_DATA_DIR = typer.Option("./loxo-data", help="The data dir `loxo serve` uses.")
_DATABASE = typer.Option(None, help="The --database-url `loxo serve` uses, if any.")
_STORE = typer.Option(None, help="The --store `loxo serve` uses, if any.")
_ENDPOINT = typer.Option(None, help="The --store-endpoint `loxo serve` uses, if any.")
_JSON = typer.Option(False, "--json", help="Print the report as one JSON object.")


def _storage(
    data_dir: str, database_url: str | None, store: str | None, store_endpoint: str | None
) -> cfgmod.ServeConfig:
    try:
        return cfgmod.build(
            "127.0.0.1:0",
            data_dir,
            database_url,
            store,
            "us-east-1",
            store_endpoint=store_endpoint,
            # No cache: fsck must read the store itself, and gc reads no chunks.
            cache_size="0",
        )
    except cfgmod.ConfigError as exc:
        typer.echo(f"loxo: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command(
    epilog="Examples: loxo gc --dry-run   |   loxo gc --grace-minutes 0 "
    "(only when nothing is writing)   |   loxo gc --database-url postgresql://... --json",
)
def gc(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Report what would be freed; delete nothing."
    ),
    grace_minutes: float = typer.Option(
        60.0,
        help="Spare anything written or re-used this recently. Below 5 is safe only "
        "while no upload is in flight.",
    ),
    data_dir: str = _DATA_DIR,
    database_url: str | None = _DATABASE,
    store: str | None = _STORE,
    store_endpoint: str | None = _ENDPOINT,
    as_json: bool = _JSON,
) -> None:
    """Free the chunks and metadata that no branch, open upload or recent commit reaches."""
    from gateway.maintenance import run_gc

    if grace_minutes < 0:
        typer.echo("loxo: --grace-minutes must be >= 0", err=True)
        raise typer.Exit(2)
    cfg = _storage(data_dir, database_url, store, store_endpoint)
    raise typer.Exit(run_gc(cfg, grace_minutes, dry_run, as_json))


@app.command(epilog="Example: loxo fsck --data-dir ./loxo-data   (exit 1 when problems are found)")
def fsck(
    data_dir: str = _DATA_DIR,
    database_url: str | None = _DATABASE,
    store: str | None = _STORE,
    store_endpoint: str | None = _ENDPOINT,
    as_json: bool = _JSON,
) -> None:
    """Verify every commit, tree node and chunk; report damage by repo, commit and path."""
    from gateway.maintenance import run_fsck

    cfg = _storage(data_dir, database_url, store, store_endpoint)
    raise typer.Exit(run_fsck(cfg, as_json))


def _version_text() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("loxo")


@app.command()
def version() -> None:
    """Print loxo's version (as `loxo --version` does)."""
    typer.echo(_version_text())


def _print_version(value: bool) -> None:
    if value:
        typer.echo(_version_text())
        raise typer.Exit()


@app.callback()
def main_options(
    show_version: bool = typer.Option(
        False,
        "--version",
        "-V",
        callback=_print_version,
        is_eager=True,
        help="Print loxo's version and exit.",
    ),
) -> None:
    """Options of `loxo` itself (the app's help text is Typer(help=...))."""


commands.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
