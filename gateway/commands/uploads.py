"""`loxo uploads`: multipart uploads in progress, to find and clear the ones
an interrupted client or a server restart left behind."""

from __future__ import annotations

import typer

from gateway.commands.common import (
    EXIT_USAGE,
    OUTPUT,
    Output,
    client,
    fail,
    human,
    out,
    print_json,
    table,
    target,
    when,
)

uploads_app = typer.Typer(
    help="Multipart uploads in progress: list them, abort the abandoned ones (they are "
    "aborted after `loxo serve --upload-expiry-hours` anyway).",
    no_args_is_help=True,
)


@uploads_app.command(
    "list", epilog="Examples: loxo uploads list images  |  loxo uploads list images@dev -o json"
)
def uploads_list(
    where: str = typer.Argument(..., metavar="REPO[@BRANCH]"),
    output: Output = OUTPUT,
) -> None:
    """List multipart uploads in progress, oldest first, with their parts so far."""
    t = target(where, allow_path=False)
    with client() as api:
        found = list(api.list_uploads(t.repo, t.ref))
    if output is Output.json:
        print_json(found)
        return
    table(
        ["UPLOAD ID", "BRANCH", "KEY", "STARTED", "PARTS", "SIZE"],
        [(u.id, u.branch, u.key, when(u.created), u.parts, human(u.size)) for u in found],
    )


@uploads_app.command(
    "abort",
    epilog="Examples: loxo uploads abort images 0005f3c2...  |  "
    "loxo uploads abort images@main raw/big.bin 0005f3c2...",
)
def uploads_abort(
    where: str = typer.Argument(..., metavar="REPO[@BRANCH]"),
    key_and_id: list[str] = typer.Argument(  # noqa: B008 - typer's way to take 1 or 2 args
        ..., metavar="[KEY] UPLOAD_ID"
    ),
) -> None:
    """Abort a multipart upload by its id (with KEY, and REPO@BRANCH, only if it is
    that key's, on that branch). Its parts are dropped; gc reclaims their space."""
    t = target(where, allow_path=False)
    if len(key_and_id) > 2:
        fail("expected [KEY] UPLOAD_ID", EXIT_USAGE)
    key = key_and_id[0] if len(key_and_id) == 2 else None
    upload_id = key_and_id[-1]
    with client() as api:
        api.abort_upload(t.repo, upload_id, t.ref, key)
    out.print(f"aborted upload {upload_id}" + (f" of {key}" if key else "") + f" in {where}")
