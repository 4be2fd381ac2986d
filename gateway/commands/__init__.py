"""The client commands of the `loxo` CLI, over the control API and S3."""

from __future__ import annotations

import typer

from gateway.commands import (
    files,
    history,
    jobs,
    lineage,
    pipeline_plan,  # noqa: F401 - adds `plan` to pipeline_app
    purge,
    worker,
)
from gateway.commands.pipelines import pipeline_app
from gateway.commands.refs import branch_app, repo_app, tag_app
from gateway.commands.settings import config_app
from gateway.commands.uploads import uploads_app


def register(app: typer.Typer) -> None:
    app.add_typer(repo_app, name="repo")
    app.add_typer(branch_app, name="branch")
    app.add_typer(tag_app, name="tag")
    app.add_typer(history.commit_app, name="commit")
    app.add_typer(config_app, name="config")
    app.add_typer(uploads_app, name="uploads")
    app.add_typer(pipeline_app, name="pipeline")
    app.add_typer(jobs.job_app, name="job")
    app.add_typer(jobs.datum_app, name="datum")
    for top, epilog in (*jobs.TOP_LEVEL, *lineage.TOP_LEVEL):
        app.command(epilog=epilog)(top)
    for command in (
        history.log,
        history.inspect,
        history.diff,
        history.history,
        history.merge,
        history.revert,
        files.put,
        files.get,
        files.ls,
        files.cat,
        purge.purge,
    ):
        app.command()(command)
    app.command(epilog=worker.WORKER_EPILOG)(worker.worker)
    jobs.datum_app.command("run", epilog=worker.DATUM_RUN_EPILOG)(worker.datum_run)
