"""The `loxo` command line."""

from __future__ import annotations

import typer

from gateway import config as cfgmod
from gateway.server import serve as run_server

app = typer.Typer(
    name="loxo",
    help="loxo: an S3-compatible server where every write is a commit.",
    no_args_is_help=True,
    add_completion=False,
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
    upload_expiry_hours: float = typer.Option(
        24.0,
        help="Abort multipart uploads that have been idle (no new part) this many hours; "
        "0 keeps them forever.",
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
            upload_expiry_hours=upload_expiry_hours,
        )
    except cfgmod.ConfigError as exc:
        typer.echo(f"loxo: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(run_server(cfg))


@app.command()
def version() -> None:
    """Print loxo's version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("loxo"))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
