"""`loxo log`, `inspect`, `diff`, `history`, `commit`, `merge` and `revert`."""

from __future__ import annotations

import itertools

import typer

from gateway.commands.common import (
    EXIT_USAGE,
    OUTPUT,
    Output,
    client,
    fail,
    human,
    open_commit_target,
    out,
    plural,
    print_json,
    recall_message,
    remember_message,
    short,
    table,
    target,
    to_json,
    when,
)

INSPECT_ONLY = ("objects", "size", "changes")

commit_app = typer.Typer(
    help="Open commits: many writes, ONE commit (start, finish, abort, list).",
    no_args_is_help=True,
)


def log(
    ref: str = typer.Argument(..., metavar="REPO[@REF]"),
    path: str = typer.Option(
        None, "--path", help="Only commits that changed this file or anything under this folder."
    ),
    since: str = typer.Option(None, help="Only commits at or after (ISO 8601 or Unix seconds)."),
    until: str = typer.Option(None, help="Only commits at or before this time."),
    limit: int = typer.Option(0, "-n", "--limit", help="At most this many (0: all)."),
    output: Output = OUTPUT,
) -> None:
    """Commits, newest first.

    Example: loxo log images@main --path labels/ --since 2026-11-01 -n 10
    """
    t = target(ref, allow_path=False)
    with client() as api:
        commits = api.log(t.repo, t.ref, path, since, until, min(limit, 1000) or None)
        shown = list(itertools.islice(commits, limit) if limit else commits)
    if output is Output.json:
        # objects, size and changes are inspect's (a log does not compute them)
        print_json([{k: v for k, v in to_json(c).items() if k not in INSPECT_ONLY} for c in shown])
        return
    table(
        ["COMMIT", "TIME", "AUTHOR", "MESSAGE"],
        [
            (short(c.id), when(c.time), c.author, c.message.splitlines()[0] if c.message else "")
            for c in shown
        ],
    )


def inspect(ref: str = typer.Argument(..., metavar="REPO@REF"), output: Output = OUTPUT) -> None:
    """A commit's parents, author, message, time, origin, size and changes.

    Example: loxo inspect images@main~1
    """
    t = target(ref, allow_path=False)
    with client() as api:
        c = api.inspect(t.repo, t.ref)
    if output is Output.json:
        print_json(c)
        return
    ch = c.changes
    rows = [
        ("commit", c.id),
        ("parents", " ".join(c.parents) or "-"),
        ("author", c.author),
        ("time", when(c.time)),
        ("message", c.message),
        ("origin", ", ".join(f"{k}={v}" for k, v in sorted(c.origin.items()))),
        ("objects", f"{c.objects} ({human(c.size)})"),
        (
            "changes",
            f"{ch.get('added', 0)} added, {ch.get('modified', 0)} modified, "
            f"{ch.get('deleted', 0)} deleted",
        ),
    ]
    for name, value in rows:
        out.print(f"[bold]{name:<9}[/bold] {value}")


def diff(
    old: str = typer.Argument(..., metavar="REPO@REF1"),
    new: str = typer.Argument(..., metavar="REPO@REF2"),
    prefix: str = typer.Option("", help="Only paths starting with this."),
    output: Output = OUTPUT,
) -> None:
    """What changed between two refs: added (+), modified (~), deleted (-).

    Example: loxo diff images@main images@dev
    """
    a, b = target(old, allow_path=False), target(new, allow_path=False)
    if a.repo != b.repo:
        fail("both refs must be in the same repo", EXIT_USAGE)
    marks = {"added": "+", "modified": "~", "deleted": "-"}
    with client() as api:
        changes = api.diff(a.repo, a.ref or "", b.ref or "", prefix)
        if output is Output.json:
            print_json(list(changes))
            return
        count = 0
        for ch in changes:
            sizes = (
                human(ch.size_after)
                if ch.change == "added"
                else human(ch.size_before)
                if ch.change == "deleted"
                else f"{human(ch.size_before)} -> {human(ch.size_after)}"
            )
            out.print(f"{marks[ch.change]} {ch.path}  ({sizes})", markup=False)
            count += 1
    if count == 0:
        out.print("no changes")


def history(
    where: str = typer.Argument(..., metavar="REPO[@REF]:PATH"),
    output: Output = OUTPUT,
) -> None:
    """The commits that changed one file, newest first.

    Example: loxo history images@main:labels/cats.csv
    """
    t = target(where)
    if not t.path:
        fail("name the file: REPO@REF:PATH", EXIT_USAGE)
    with client() as api:
        versions = list(api.history(t.repo, t.path, t.ref))
    if output is Output.json:
        print_json(versions)
        return
    table(
        ["COMMIT", "TIME", "SIZE", "MESSAGE"],
        [
            (short(v.commit), when(v.time), "deleted" if v.deleted else human(v.size), v.message)
            for v in versions
        ],
    )


@commit_app.command(
    "start",
    epilog='Example: B=$(loxo commit start images@main -m "nightly labels"); '
    "aws s3 sync ./out s3://$B/out; loxo commit finish $B",
)
def commit_start(
    where: str = typer.Argument(..., metavar="REPO@BRANCH"),
    idle_minutes: float = typer.Option(
        None, help="Abort it when nothing is written for this long (default: the server's setting)."
    ),
    message: str = typer.Option(
        None,
        "-m",
        "--message",
        help="The commit message `commit finish` uses unless given another (kept on this machine).",
    ),
    output: Output = OUTPUT,
) -> None:
    """Start an open commit; prints the bucket whose writes become ONE commit."""
    t = target(where, need_ref=True, allow_path=False)
    with client() as api:
        opened = api.start_commit(t.repo, t.name, idle_minutes * 60 if idle_minutes else None)
    if message:
        remember_message(t.repo, opened.id, message)
    if output is Output.json:
        print_json(opened)
    else:
        out.print(opened.bucket)


@commit_app.command(
    "finish",
    epilog='Examples: loxo commit finish images@3f2a9c01 -m "nightly labels"  |  '
    "loxo commit finish images.3f2a9c01...  (the bucket `commit start` printed; "
    "also s3://images.3f2a9c01...)",
)
def commit_finish(
    where: str = typer.Argument(..., metavar="REPO@ID|REPO.ID"),
    message: str = typer.Option(
        None, "-m", "--message", help="The commit message (default: `commit start -m`'s)."
    ),
    output: Output = OUTPUT,
) -> None:
    """Finish an open commit: everything written to it becomes one commit."""
    repo, ident = open_commit_target(where)
    text = message or recall_message(repo, ident)
    if not text:
        fail("give the commit message: -m MESSAGE (or `commit start -m` it)", EXIT_USAGE)
    with client() as api:
        opened = next((o for o in api.list_open_commits(repo) if o.id.startswith(ident)), None)
        commit = api.finish_commit(repo, ident, text)
        changed = sum(api.inspect(repo, commit).changes.values()) if commit else 0
    recall_message(repo, ident, forget=True)
    if output is Output.json:
        print_json({"commit": commit})
        return
    what = f"open commit {opened.id if opened else ident}"
    branch = f"{repo}@{opened.branch}" if opened else repo
    if commit is None:
        out.print(f"finished {what}: nothing was written to it, so no commit was made")
    else:
        out.print(
            f"finished {what} on {branch}: new commit {commit} ({plural(changed, 'path')} changed)"
        )


@commit_app.command(
    "abort",
    epilog="Examples: loxo commit abort images@3f2a9c01  |  loxo commit abort images.3f2a9c01...",
)
def commit_abort(where: str = typer.Argument(..., metavar="REPO@ID|REPO.ID")) -> None:
    """Abort an open commit: nothing written to it is committed."""
    repo, ident = open_commit_target(where)
    with client() as api:
        api.abort_commit(repo, ident)
    recall_message(repo, ident, forget=True)
    out.print(f"aborted {repo}@{ident}")


@commit_app.command("list", epilog="Example: loxo commit list images")
def commit_list(repo: str, output: Output = OUTPUT) -> None:
    """List open commits."""
    with client() as api:
        opened = list(api.list_open_commits(repo))
    if output is Output.json:
        print_json(opened)
    else:
        table(
            ["OPEN COMMIT", "BRANCH", "BUCKET", "STARTED"],
            [(o.id, o.branch, o.bucket, when(o.created)) for o in opened],
        )


def merge(
    source: str = typer.Argument(..., metavar="REPO@SOURCE"),
    into: str = typer.Option(..., "--into", help="The branch to merge into."),
    strategy: str = typer.Option(
        None, help="Settle conflicts: ours (keep the target's) or theirs (take the source's)."
    ),
    message: str = typer.Option(None, "-m", "--message", help="The merge commit's message."),
    output: Output = OUTPUT,
) -> None:
    """Merge a ref into a branch: fast-forward, or a three-way path-level merge.

    Conflicts (a path changed on both sides differently) are listed, nothing is
    written and the exit code is 4, unless --strategy settles them.

    Example: loxo merge images@dev --into main
    """
    t = target(source, need_ref=True, allow_path=False)
    if strategy not in (None, "ours", "theirs"):
        fail("--strategy is ours or theirs", EXIT_USAGE)
    branch = into.partition("@")[2] if "@" in into else into
    with client() as api:
        result = api.merge(t.repo, t.name, branch, strategy, message)
    if output is Output.json:
        print_json(result)
        return
    out.print(f"{result.outcome}: {t.repo}@{branch} is at {result.commit}")
    for c in result.conflicts:
        out.print(f"  conflict settled ({strategy}): {c.path} ({c.kind})", markup=False)


def revert(
    commit: str = typer.Argument(..., metavar="REPO@COMMIT"),
    branch: str = typer.Option(
        None, help="Where the new commit goes (default: the default branch)."
    ),
    message: str = typer.Option(None, "-m", "--message", help="The new commit's message."),
    output: Output = OUTPUT,
) -> None:
    """Undo a commit with a new commit.

    Example: loxo revert images@main~2
    """
    t = target(commit, need_ref=True, allow_path=False)
    with client() as api:
        undone = api.inspect(t.repo, t.name).id
        made = api.revert(t.repo, t.name, branch, message)
        info = api.inspect(t.repo, made) if made else None
        into = branch or api.describe_repo(t.repo).default_branch
    if output is Output.json:
        print_json({"commit": made})
    elif info is None:
        out.print(f"nothing to undo: {short(undone)} changes nothing on {t.repo}@{into}")
    else:
        out.print(
            f"reverted {short(undone)} on {t.repo}@{into}: new commit {made} "
            f"({plural(sum(info.changes.values()), 'path')} changed)"
        )
