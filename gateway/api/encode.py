"""JSON shapes of the control API's resources (one function per resource)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from s3api.buckets import commit_bucket
from versioning.commit_log import PathChange
from versioning.control import CommitInfo, MergeResult, RepoInfo
from versioning.ids import CommitId
from versioning.model import Branch, Commit, ObjectEntry, OpenCommit, Repo, Tag, TrashEntry
from versioning.pipelines.jobs import JobRow
from versioning.pipelines.service import Pipeline
from versioning.pipelines.spec import to_json
from versioning.uploads import UploadInfo

# Years 1 to 9999 of datetime, in Unix seconds (a bound, not a calendar).
MAX_SECONDS = 253_402_300_799


def time_text(us: int | None) -> str | None:
    """Microseconds since the epoch as ISO 8601 UTC (`2026-11-21T10:00:00.123456Z`)."""
    if us is None:
        return None
    moment = datetime.fromtimestamp(us / 1_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> int:
    """ISO 8601 (a zone-less time is UTC) or Unix seconds, to microseconds."""
    try:
        seconds = float(text)
    except ValueError:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()
    if not math.isfinite(seconds) or abs(seconds) > MAX_SECONDS:
        raise ValueError(f"time out of range: {text!r}")
    return int(seconds * 1_000_000)


def hex_or_none(cid: CommitId | None) -> str | None:
    return cid.hex() if cid is not None else None


def repo(r: Repo) -> dict[str, Any]:
    return {"name": r.name, "default_branch": r.default_branch, "created": time_text(r.created)}


def repo_info(info: RepoInfo) -> dict[str, Any]:
    return {
        **repo(info.repo),
        "branches": info.branches,
        "last_commit": hex_or_none(info.last_commit),
        "last_commit_time": time_text(info.last_commit_time),
        "objects": info.objects,
        "size": info.size,
    }


def branch(b: Branch) -> dict[str, Any]:
    return {
        "repo": b.repo,
        "name": b.name,
        "head": hex_or_none(b.head),
        "created": time_text(b.created),
    }


def trash_entry(e: TrashEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "kind": e.kind,
        "repo": e.repo,
        "name": e.name,
        "head": hex_or_none(e.head),
        "deleted": time_text(e.deleted),
        "expires": time_text(e.expires),
        "default_branch": e.default_branch,
        "branches": list(e.branches),
        "tags": list(e.tags),
    }


def tag(t: Tag) -> dict[str, Any]:
    return {
        "repo": t.repo,
        "name": t.name,
        "commit": t.commit.hex(),
        "created": time_text(t.created),
    }


def commit(cid: CommitId, c: Commit) -> dict[str, Any]:
    return {
        "id": cid.hex(),
        "parents": [p.hex() for p in c.parents],
        "author": c.author,
        "message": c.message,
        "time": time_text(c.time),
        "origin": c.origin,
    }


def commit_info(repo: str, info: CommitInfo) -> dict[str, Any]:
    return {
        **commit(info.id, info.commit),
        # The read-only S3 bucket of this commit (None: no room for one).
        "bucket": commit_bucket(repo, info.id.hex()),
        "objects": info.objects,
        "size": info.size,
        "changes": {"added": info.added, "modified": info.modified, "deleted": info.deleted},
    }


def change(ch: PathChange) -> dict[str, Any]:
    return {
        "path": ch.path,
        "change": ch.kind,
        "size_before": ch.before.size if ch.before else None,
        "size_after": ch.after.size if ch.after else None,
    }


def entry(e: ObjectEntry | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {
        "size": e.size,
        "etag": e.etag,
        "content_type": e.content_type,
        "last_modified": time_text(e.last_modified),
    }


def open_commit(r: OpenCommit) -> dict[str, Any]:
    return {
        "id": r.id.hex(),
        "repo": r.repo,
        "branch": r.branch,
        # The S3 bucket its writes go to (start refuses repos with no room).
        "bucket": commit_bucket(r.repo, r.id.hex()),
        "base": hex_or_none(r.base),
        "created": time_text(r.created),
        "idle_seconds": r.idle_us / 1_000_000,
        "author": r.author,
        "finishing": r.finishing,
    }


def upload(info: UploadInfo) -> dict[str, Any]:
    u = info.upload
    return {
        "id": u.id,
        "repo": u.repo,
        "branch": u.branch,
        "key": u.key,
        "created": time_text(u.created),
        "parts": info.parts,
        "size": info.size,
    }


def merge_result(m: MergeResult) -> dict[str, Any]:
    return {
        "outcome": m.outcome,
        "commit": hex_or_none(m.commit),
        "conflicts": [{"path": c.path, "kind": c.kind} for c in m.conflicts],
    }


def pipeline(p: Pipeline, last_job: JobRow | None = None) -> dict[str, Any]:
    return {
        "last_job": (
            {"id": last_job.id, "state": last_job.state, "version": last_job.version}
            if last_job is not None
            else None
        ),
        "name": p.name,
        "state": p.state,
        "version": p.version,
        "salt": p.salt,
        "reprocess": p.reprocess,
        "output_repo": p.name,
        "input_repos": list(p.input_repos),
        "created": time_text(p.created),
        "updated": time_text(p.updated),
        "spec": to_json(p.spec),
    }
