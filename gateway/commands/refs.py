"""`loxo repo`, `loxo branch` and `loxo tag`: names for history."""

from __future__ import annotations

from collections.abc import Iterable

import typer

from gateway.client import LoxoError
from gateway.client.models import TrashEntry
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
    target,
    when,
)

repo_app = typer.Typer(
    help="Create, list, describe, delete and restore repos.", no_args_is_help=True
)
branch_app = typer.Typer(
    help="Create, list, delete, restore and reset branches.", no_args_is_help=True
)
_TRASH = typer.Option(
    False, "--trash", help="List what was deleted and can be restored, and until when."
)
tag_app = typer.Typer(help="Immutable names for commits.", no_args_is_help=True)


@repo_app.command("create", epilog="Example: loxo repo create images")
def repo_create(
    name: str,
    output: Output = OUTPUT,
) -> None:
    """Create a repo with an empty default branch, main."""
    with client() as api:
        repo = api.create_repo(name)
    if output is Output.json:
        print_json(repo)
    else:
        out.print(f"created repo {repo.name} (bucket {repo.name}, branch {repo.default_branch})")


@repo_app.command("list", epilog="Example: loxo repo list --trash")
def repo_list(trash: bool = _TRASH, output: Output = OUTPUT) -> None:
    """List repos (with --trash: deleted repos that can be restored)."""
    if trash:
        with client() as api:
            _trash_table(list(api.list_trash(kind="repo")), output)
        return
    with client() as api:
        repos = list(api.list_repos())
    if output is Output.json:
        print_json(repos)
    else:
        table(
            ["REPO", "DEFAULT BRANCH", "CREATED"],
            [(r.name, r.default_branch, when(r.created)) for r in repos],
        )


@repo_app.command("describe", epilog="Example: loxo repo describe images")
def repo_describe(name: str, output: Output = OUTPUT) -> None:
    """Size, branch count and last commit of a repo."""
    with client() as api:
        repo = api.describe_repo(name)
    if output is Output.json:
        print_json(repo)
        return
    table(
        ["REPO", "BRANCHES", "OBJECTS", "SIZE", "LAST COMMIT", "AT"],
        [
            (
                repo.name,
                repo.branches,
                repo.objects,
                human(repo.size),
                short(repo.last_commit),
                when(repo.last_commit_time),
            )
        ],
    )


@repo_app.command("delete", epilog="Example: loxo repo delete images --yes")
def repo_delete(
    name: str, yes: bool = typer.Option(False, "--yes", help="Confirm: delete everything.")
) -> None:
    """Delete a repo with all its branches, tags and history (to the trash:
    `loxo repo restore` puts it back until it expires)."""
    if not yes:
        fail(
            f"deleting {name} removes all its branches, tags and history (to the trash, "
            "restorable until it expires); add --yes",
            EXIT_USAGE,
        )
    with client() as api:
        api.delete_repo(name, confirm=True)
        until = _expiry(api.list_trash(repo=name, kind="repo"), name)
    out.print(f"deleted repo {name}{until}")


@repo_app.command("restore", epilog="Example: loxo repo restore images --as images-old")
def repo_restore(
    name: str,
    as_name: str = typer.Option(
        None, "--as", help="Restore under this name (when NAME was taken again)."
    ),
    output: Output = OUTPUT,
) -> None:
    """Put a deleted repo back, with all its branches, tags and history."""
    with client() as api:
        repo = api.restore_repo(name, as_name)
    if output is Output.json:
        print_json(repo)
    else:
        out.print(f"restored repo {repo.name} (bucket {repo.name})")


def _expiry(entries: Iterable[TrashEntry], name: str) -> str:
    """ " (in the trash until ...)" from the newest entry named `name`, if any."""
    for entry in entries:
        if entry.name == name:
            return f" (in the trash until {when(entry.expires)}: loxo {entry.kind} restore)"
    return " for good (the server keeps no trash)"


def _trash_table(entries: list[TrashEntry], output: Output) -> None:
    if output is Output.json:
        print_json(entries)
        return
    table(
        ["KIND", "NAME", "HEAD", "DELETED", "RESTORABLE UNTIL", "REFS"],
        [
            (
                e.kind,
                e.name if e.kind == "repo" else f"{e.repo}@{e.name}",
                short(e.head),
                when(e.deleted),
                when(e.expires),
                (f"{len(e.branches)} branches, {len(e.tags)} tags" if e.kind == "repo" else "-"),
            )
            for e in entries
        ],
    )


@branch_app.command("create", epilog="Example: loxo branch create images@dev --from images@main")
def branch_create(
    new: str = typer.Argument(..., metavar="REPO@NEW"),
    source: str = typer.Option(
        None, "--from", help="REF or REPO@REF to start at (default: the default branch's head)."
    ),
    output: Output = OUTPUT,
) -> None:
    """Create a branch at any ref (branch, tag, commit, with ~N or ^)."""
    t = target(new, need_ref=True, allow_path=False)
    ref = _ref_in(t.repo, source)
    with client() as api:
        branch = api.create_branch(t.repo, t.name, ref)
    if output is Output.json:
        print_json(branch)
    else:
        out.print(
            f"created branch {t.repo}@{branch.name} at {short(branch.head)} "
            f"(bucket {t.repo}.{branch.name})"
        )


def _ref_in(repo: str, text: str | None, option: str = "--from") -> str | None:
    """An option's ref: REF, or REPO@REF of the same repo."""
    if text is None:
        return None
    if "@" in text:
        other, _, ref = text.partition("@")
        if other != repo:
            fail(f"{option} {text}: refs must be in repo {repo}", EXIT_USAGE)
        return ref
    return text


@branch_app.command("list", epilog="Example: loxo branch list images --trash")
def branch_list(repo: str, trash: bool = _TRASH, output: Output = OUTPUT) -> None:
    """List a repo's branches (with --trash: deleted ones that can be restored)."""
    if trash:
        with client() as api:
            _trash_table(list(api.list_trash(repo=repo, kind="branch")), output)
        return
    with client() as api:
        branches = list(api.list_branches(repo))
    if output is Output.json:
        print_json(branches)
    else:
        table(
            ["BRANCH", "HEAD", "CREATED"],
            [(b.name, short(b.head), when(b.created)) for b in branches],
        )


@branch_app.command("delete", epilog="Example: loxo branch delete images@dev --yes")
def branch_delete(
    name: str = typer.Argument(..., metavar="REPO@BRANCH"),
    yes: bool = typer.Option(
        False, "--yes", help="Confirm: delete even with commits no other branch or tag has."
    ),
) -> None:
    """Delete a branch, to the trash (`loxo branch restore` puts it back until
    it expires). Without --yes, refused when it has commits no other branch or
    tag reaches."""
    t = target(name, need_ref=True, allow_path=False)
    with client() as api:
        try:
            api.delete_branch(t.repo, t.name, require_merged=not yes)
        except LoxoError as exc:
            if exc.code != "unmerged_commits":
                raise
            fail(
                f"{t.repo}@{t.name} has {exc.details.get('commits')} commits no other branch "
                "or tag reaches; deleted, they would only be in the trash until it expires. "
                "Merge them first, or add --yes",
                EXIT_USAGE,
            )
        until = _expiry(api.list_trash(repo=t.repo, kind="branch"), t.name)
    out.print(f"deleted branch {t.repo}@{t.ref}{until}")


@branch_app.command("restore", epilog="Example: loxo branch restore images@dev --as dev-old")
def branch_restore(
    name: str = typer.Argument(..., metavar="REPO@BRANCH"),
    as_name: str = typer.Option(
        None, "--as", help="Restore under this name (when BRANCH was taken again)."
    ),
    output: Output = OUTPUT,
) -> None:
    """Put a deleted branch back at the head it had."""
    t = target(name, need_ref=True, allow_path=False)
    with client() as api:
        branch = api.restore_branch(t.repo, t.name, as_name)
    if output is Output.json:
        print_json(branch)
    else:
        out.print(
            f"restored branch {t.repo}@{branch.name} at {short(branch.head)} "
            f"(bucket {t.repo}.{branch.name})"
        )


@branch_app.command(
    "reset", epilog="Example: loxo branch reset images@main --to images@main~1 --expect 3f2a..."
)
def branch_reset(
    name: str = typer.Argument(..., metavar="REPO@BRANCH"),
    to: str = typer.Option(..., "--to", help="REF or REPO@REF to move the head to."),
    expect: str = typer.Option(
        None, "--expect", help="Only if the head is still this commit id ('none': no commit)."
    ),
    output: Output = OUTPUT,
) -> None:
    """Move a branch's head to another commit (compare-and-set with --expect)."""
    t = target(name, need_ref=True, allow_path=False)
    ref = _ref_in(t.repo, to, "--to") or to
    with client() as api:
        if expect is None:
            branch = api.reset_branch(t.repo, t.name, ref)
        else:
            branch = api.reset_branch(t.repo, t.name, ref, None if expect == "none" else expect)
    if output is Output.json:
        print_json(branch)
    else:
        out.print(f"{t.repo}@{branch.name} is now at {branch.head}")


@tag_app.command("create", epilog="Example: loxo tag create images@v1 --from images@main")
def tag_create(
    name: str = typer.Argument(..., metavar="REPO@TAG"),
    source: str = typer.Option(
        None, "--from", help="REF or REPO@REF to name (default: the default branch's head)."
    ),
    output: Output = OUTPUT,
) -> None:
    """Name a commit, for good: usable anywhere a ref is (images@v1)."""
    t = target(name, need_ref=True, allow_path=False)
    with client() as api:
        tag = api.create_tag(t.repo, t.name, _ref_in(t.repo, source))
    if output is Output.json:
        print_json(tag)
    else:
        out.print(f"tagged {tag.commit} as {t.repo}@{tag.name}")


@tag_app.command("list", epilog="Example: loxo tag list images")
def tag_list(repo: str, output: Output = OUTPUT) -> None:
    """List a repo's tags."""
    with client() as api:
        tags = list(api.list_tags(repo))
    if output is Output.json:
        print_json(tags)
    else:
        table(
            ["TAG", "COMMIT", "CREATED"], [(t.name, short(t.commit), when(t.created)) for t in tags]
        )


@tag_app.command("delete", epilog="Example: loxo tag delete images@v1")
def tag_delete(name: str = typer.Argument(..., metavar="REPO@TAG")) -> None:
    """Delete a tag (the commit stays)."""
    t = target(name, need_ref=True, allow_path=False)
    with client() as api:
        api.delete_tag(t.repo, t.name)
    out.print(f"deleted tag {t.repo}@{t.ref}")
