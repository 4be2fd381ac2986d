"""`loxo purge`: erase a path's bytes from a repo's whole history (compliance),
and `loxo purge REPO --list`: the audit log of purges."""

from __future__ import annotations

import typer

from gateway.client.models import PurgePlan, plural
from gateway.commands.common import (
    EXIT_USAGE,
    OUTPUT,
    Output,
    client,
    fail,
    human,
    out,
    print_json,
    short,
    table,
    when,
)


def _show_plan(plan: PurgePlan) -> None:
    out.print(
        f"{plan.repo}:{plan.path}: {plural(len(plan.versions), 'version')} in "
        f"{plural(plan.commits, 'commit')}, "
        f"{plural(plan.contents, 'distinct body', 'distinct bodies')}, {human(plan.bytes)}"
    )
    if plan.versions:
        table(
            ["PATH", "COMMIT", "SIZE"],
            [(v.path, short(v.commit), human(v.size)) for v in plan.versions],
        )
    if plan.other_paths:
        out.print(
            "The same bytes are also at these paths of the repo, and are erased there too: "
            + ", ".join(plan.other_paths)
            + ("" if plan.other_paths_complete else " (and maybe more)")
        )
    elif not plan.other_paths_complete:
        out.print(
            "Other paths holding the same bytes (erased too) were not looked for: large trees."
        )
    out.print("Other repos holding the same bytes keep them.")


def purge(
    repo: str = typer.Argument(..., metavar="REPO"),
    path: str = typer.Argument(
        None, metavar="PATH", help="A path, or a folder ending in / (every key under it)."
    ),
    reason: str = typer.Option(None, "--reason", help="Why (kept in the audit log)."),
    yes: bool = typer.Option(False, "--yes", help="Confirm: erase, for good."),
    list_log: bool = typer.Option(False, "--list", help="Show the repo's purge audit log."),
    output: Output = OUTPUT,
) -> None:
    """Erase every version of PATH from REPO's history, for good (compliance).

    Commit ids, the log and paths stay; reads of a purged version answer
    InvalidObjectState (S3) or content_purged, and the next `loxo gc` deletes
    the bytes unless another repo holds them. Identical bytes at other paths
    of the repo are erased too. Without --yes, shows what would be erased and
    exits 2.

    Examples: loxo purge crm exports/customers.csv   (what would be erased)  |
    loxo purge crm exports/customers.csv --reason "GDPR request 4411" --yes  |
    loxo purge crm --list
    """
    if list_log:
        if path is not None:
            fail("--list takes the repo only: loxo purge REPO --list", EXIT_USAGE)
        with client() as api:
            entries = list(api.list_purges(repo))
        if output is Output.json:
            print_json(entries)
            return
        table(
            ["ID", "AT", "PATH", "VERSIONS", "COMMITS", "BYTES", "BY", "REASON"],
            [
                (
                    e.id,
                    when(e.at),
                    e.path,
                    e.versions,
                    e.commits,
                    human(e.bytes),
                    e.purged_by,
                    e.reason,
                )
                for e in entries
            ],
        )
        return
    if not path:
        fail("name the PATH to purge (or use --list): loxo purge REPO PATH", EXIT_USAGE)
    with client() as api:
        plan = api.purge_plan(repo, path)
        if not yes:
            if output is Output.json:
                print_json(plan)
            else:
                _show_plan(plan)
                out.print(
                    "Nothing was erased. To erase this for good, repeat with --reason TEXT --yes"
                )
            raise typer.Exit(EXIT_USAGE)
        if not reason or not reason.strip():
            fail("a purge needs --reason TEXT: it goes to the audit log", EXIT_USAGE)
        done = api.purge(repo, path, reason, confirm=True)
    if output is Output.json:
        print_json(done)
        return
    _show_plan(plan)
    out.print(
        f"purged {repo}:{done.path} (purge #{done.id}): {plural(done.versions, 'version')} "
        f"in {plural(done.commits, 'commit')} now answer InvalidObjectState; the next "
        "`loxo gc` deletes "
        f"{human(done.bytes)} of bytes not held by other repos"
    )
