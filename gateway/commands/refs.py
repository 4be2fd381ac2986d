"""`loxo repo`, `loxo branch` and `loxo tag`: names for history."""

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
    short,
    table,
    target,
    when,
)

repo_app = typer.Typer(help="Create, list, describe and delete repos.", no_args_is_help=True)
branch_app = typer.Typer(help="Create, list, delete and reset branches.", no_args_is_help=True)
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


@repo_app.command("list", epilog="Example: loxo repo list -o json")
def repo_list(output: Output = OUTPUT) -> None:
    """List repos."""
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
    """Delete a repo with all its branches, tags and history."""
    if not yes:
        fail(f"deleting {name} removes all its branches, tags and history; add --yes", EXIT_USAGE)
    with client() as api:
        api.delete_repo(name, confirm=True)
    out.print(f"deleted repo {name}")


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


@branch_app.command("list", epilog="Example: loxo branch list images")
def branch_list(repo: str, output: Output = OUTPUT) -> None:
    """List a repo's branches."""
    with client() as api:
        branches = list(api.list_branches(repo))
    if output is Output.json:
        print_json(branches)
    else:
        table(
            ["BRANCH", "HEAD", "CREATED"],
            [(b.name, short(b.head), when(b.created)) for b in branches],
        )


@branch_app.command("delete", epilog="Example: loxo branch delete images@dev")
def branch_delete(name: str = typer.Argument(..., metavar="REPO@BRANCH")) -> None:
    """Delete a branch (its commits stay in the history of other refs)."""
    t = target(name, need_ref=True, allow_path=False)
    with client() as api:
        api.delete_branch(t.repo, t.name)
    out.print(f"deleted branch {t.repo}@{t.ref}")


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
