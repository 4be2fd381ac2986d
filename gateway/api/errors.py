"""The control API's errors: JSON bodies with a stable code, and the one table
mapping domain errors to them.

Body: {"error": {"code": "branch_not_found", "message": "...", ...details}}.
Codes are part of the API's contract (docs/api.md lists them); messages are
for people and may change.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from versioning import errors as dom


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def response(self) -> JSONResponse:
        body = {"error": {"code": self.code, "message": self.message, **self.details}}
        return JSONResponse(body, status_code=self.status)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


# Most specific first: the first class an error is an instance of wins.
_DOMAIN_TABLE: tuple[tuple[type[dom.VersioningError], int, str], ...] = (
    (dom.RepoNotFound, 404, "repo_not_found"),
    (dom.BranchNotFound, 404, "branch_not_found"),
    (dom.TagNotFound, 404, "tag_not_found"),
    (dom.OpenCommitNotFound, 404, "open_commit_not_found"),
    (dom.TrashNotFound, 404, "trash_not_found"),
    (dom.CommitNotFound, 404, "commit_not_found"),
    (dom.RefNotFound, 404, "ref_not_found"),
    (dom.ObjectNotFound, 404, "object_not_found"),
    (dom.UploadNotFound, 404, "upload_not_found"),
    (dom.PipelineNotFound, 404, "pipeline_not_found"),
    (dom.JobNotFound, 404, "job_not_found"),
    (dom.DatumNotFound, 404, "datum_not_found"),
    (dom.RepoExists, 409, "repo_exists"),
    (dom.BranchExists, 409, "branch_exists"),
    (dom.TagExists, 409, "tag_exists"),
    (dom.PipelineExists, 409, "pipeline_exists"),
    (dom.InvalidSpec, 400, "invalid_spec"),
    (dom.InvalidName, 400, "invalid_name"),
    (dom.InvalidRef, 400, "invalid_ref"),
    (dom.InvalidCursor, 400, "invalid_request"),
    (dom.AmbiguousRef, 400, "ambiguous_ref"),
    (dom.DefaultBranchInUse, 409, "default_branch"),
    (dom.BranchNotEmpty, 409, "branch_not_empty"),
    (dom.ReadOnlyRef, 409, "read_only"),
    (dom.HeadMoved, 409, "head_moved"),
    (dom.MergeConflict, 409, "merge_conflict"),
    (dom.UnmergedCommits, 409, "unmerged_commits"),
    (dom.JobActive, 409, "job_active"),
    (dom.LeaseLost, 409, "lease_lost"),
    (dom.DatumNotRestartable, 409, "datum_not_restartable"),
    (dom.JobEnded, 409, "job_ended"),
    (dom.ContentPurged, 410, "content_purged"),
    (dom.Busy, 503, "busy"),
    (dom.ConcurrentUpdate, 503, "concurrent_update"),
    (dom.ContentGone, 503, "content_gone"),
    (dom.CorruptData, 500, "corrupt_data"),
)

# Codes the API itself raises, for the documentation's table.
API_CODES: tuple[tuple[int, str, str], ...] = (
    (400, "invalid_request", "a malformed parameter, cursor or JSON body"),
    (400, "confirmation_required", "a destructive call without confirm=true"),
    (400, "invalid_spec", "a pipeline spec that cannot be used; `field` names the culprit"),
    (
        401,
        "unauthenticated",
        "the request carries no SigV4 signature (on /_loxo/metrics with --metrics-auth "
        "token: no bearer token)",
    ),
    (
        403,
        "access_denied",
        "an unknown access key, or a signature (or metrics token) that does not match",
    ),
    (404, "not_found", "no such API path (or /_loxo/ path)"),
    (405, "method_not_allowed", "the path exists, the method does not"),
    (500, "internal_error", "a bug: the server log has the details"),
    (503, "unavailable", "/_loxo/health: the database does not answer"),
)


def from_domain(exc: dom.VersioningError) -> ApiError:
    for cls, status, code in _DOMAIN_TABLE:
        if isinstance(exc, cls):
            details: dict[str, Any] = {}
            if isinstance(exc, dom.MergeConflict):
                details["conflicts"] = [
                    {"path": path, "kind": kind}
                    for path, _, kind in (c.partition("\t") for c in exc.conflicts)
                ]
            if isinstance(exc, dom.UnmergedCommits):
                details["commits"] = exc.commits
            if isinstance(exc, dom.InvalidSpec):
                details["field"] = exc.field
            return ApiError(status, code, sentence(exc) or code.replace("_", " "), **details)
    return ApiError(500, "internal_error", "internal error; the server log has the details")


def sentence(exc: dom.VersioningError) -> str:
    """The error's message as a sentence. Not-found and exists errors carry
    bare names ("images", "images@dev", a commit id) as their message: those
    become "repo 'images' does not exist" and the like; a message that is
    already a sentence is kept."""
    text = str(exc)
    if not text or " " in text or not isinstance(exc, dom.NotFound | dom.AlreadyExists):
        return text
    repo, at, name = text.partition("@")
    if not at:
        repo, name = "", text
    of = f" in repo {repo!r}" if repo else ""
    match exc:
        case dom.RepoNotFound():
            return f"repo {text!r} does not exist"
        case dom.BranchNotFound():
            return f"branch {name!r} does not exist{of}"
        case dom.TagNotFound():
            return f"tag {name!r} does not exist{of}"
        case dom.OpenCommitNotFound():
            return f"open commit {name} does not exist{of} (finished, aborted or expired)"
        case dom.CommitNotFound():
            return f"commit {name} does not exist{of}"
        case dom.RefNotFound():
            return f"ref {name!r} names nothing{of}"
        case dom.ObjectNotFound():
            return f"object {text!r} does not exist"
        case dom.UploadNotFound():
            return f"upload {text} does not exist (completed, aborted or expired)"
        case dom.RepoExists():
            return f"repo {text!r} already exists"
        case dom.PipelineNotFound():
            return f"pipeline {text!r} does not exist"
        case dom.JobNotFound():
            return f"job {text} does not exist"
        case dom.DatumNotFound():
            return f"datum {text} does not exist"
        case dom.PipelineExists():
            return f"pipeline {text!r} already exists"
        case dom.BranchExists():
            return f"branch {name!r} already exists{of}"
        case dom.TagExists():
            return f"tag {name!r} already exists{of}"
    return text


def domain_codes() -> list[tuple[str, int, str]]:
    return [(cls.__name__, status, code) for cls, status, code in _DOMAIN_TABLE]
