"""`loxo config`: where the client commands find loxo and its keys."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from gateway.commands.common import (
    EXIT_USAGE,
    OUTPUT,
    Output,
    Settings,
    config_path,
    fail,
    out,
    print_json,
)

config_app = typer.Typer(
    help="Endpoint and keys for the client commands (LOXO_ENDPOINT, LOXO_ACCESS_KEY and "
    "LOXO_SECRET_KEY override the file).",
    no_args_is_help=True,
)


@config_app.command(
    "set",
    epilog="Examples: loxo config set --endpoint http://127.0.0.1:9000 --from-data-dir ./loxo-data"
    "  |  loxo config set --endpoint https://loxo.example.com --access-key KEY --secret-key SECRET",
)
def config_set(
    endpoint: str = typer.Option(None, help="loxo's URL, e.g. http://127.0.0.1:9000."),
    access_key: str = typer.Option(None, help="The access key."),
    secret_key: str = typer.Option(None, help="The secret key."),
    region: str = typer.Option(None, help="The region to sign for (default us-east-1)."),
    from_data_dir: Path = typer.Option(  # noqa: B008
        None, help="Take the keys a local `loxo serve` generated in its data dir."
    ),
) -> None:
    """Store settings in the config file (only those given change)."""
    path = config_path()
    stored = json.loads(path.read_text("utf-8")) if path.exists() else {}
    if from_data_dir is not None:
        creds = from_data_dir / "credentials.json"
        if not creds.exists():
            fail(
                f"{creds} does not exist: has `loxo serve --data-dir {from_data_dir}` run?",
                EXIT_USAGE,
            )
        doc = json.loads(creds.read_text("utf-8"))
        stored["access_key"], stored["secret_key"] = doc["access_key"], doc["secret_key"]
    for name, value in (
        ("endpoint", endpoint),
        ("access_key", access_key),
        ("secret_key", secret_key),
        ("region", region),
    ):
        if value is not None:
            stored[name] = value
    saved = Settings(
        stored.get("endpoint"),
        stored.get("access_key"),
        stored.get("secret_key"),
        stored.get("region") or "us-east-1",
    ).save()
    out.print(f"saved {saved}")


@config_app.command("show", epilog="Example: loxo config show -o json")
def config_show(output: Output = OUTPUT) -> None:
    """The settings in effect (the secret key masked)."""
    s = Settings.load()
    shown = {
        "file": str(config_path()),
        "endpoint": s.endpoint,
        "access_key": s.access_key,
        "secret_key": ("*" * 8) if s.secret_key else None,
        "region": s.region,
    }
    if output is Output.json:
        print_json(shown)
    else:
        for name, value in shown.items():
            out.print(f"[bold]{name:<10}[/bold] {value if value is not None else '-'}")
