"""What several S3 actions share: finding the bucket's view, and object headers."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote

from s3api import checksums, routing, tags
from s3api.buckets import BucketRef, parse_bucket
from s3api.errors import InvalidArgument, KeyTooLongError, NoSuchBucket, NotImplementedErr
from s3api.inputs import header_unsafe
from s3api.request import S3Request
from s3api.xml import http_date
from versioning import errors as dom
from versioning import tree
from versioning.committer import Check
from versioning.ids import is_commit_hex
from versioning.model import ObjectEntry
from versioning.pipelines.output import META_JOB, META_KEYS
from versioning.repository import Versioning
from versioning.text import some_names
from versioning.views import ObjectAttrs, View

# Representation headers stored with an object and returned on GET/HEAD.
STORED_HEADERS = (
    "content-encoding",
    "content-disposition",
    "cache-control",
    "content-language",
    "expires",
)
MAX_KEY_BYTES = 1024
MAX_PARTS = 10_000  # multipart uploads: part numbers 1 to 10,000
DEFAULT_CONTENT_TYPE = "binary/octet-stream"


@dataclass(frozen=True, slots=True)
class Context:
    versioning: Versioning
    region: str
    min_part_size: int = 5 * 1024 * 1024


def bucket_of(req: S3Request) -> BucketRef:
    if req.bucket is None:
        assert req.bucket_name is not None
        req.bucket = parse_bucket(req.bucket_name)
    return req.bucket


async def view_of(ctx: Context, req: S3Request) -> View:
    ref = bucket_of(req)
    try:
        if ref.commit is not None:
            return await ctx.versioning.snapshot_view(ref.repo, ref.commit)
        # `repo.name` is a branch, or a tag (read-only, like a snapshot);
        # a bare `repo` its default branch.
        return await ctx.versioning.named_view(ref.repo, ref.branch)
    except dom.NotFound:
        raise await no_such_bucket(ctx, req.bucket_name or ref.name) from None


async def no_such_bucket(ctx: Context, bucket: str) -> NoSuchBucket:
    """NoSuchBucket for `bucket`, saying what is missing and what exists: no
    such repo, or the repo's branches when it is the branch (or commit) that
    is missing."""
    ref = parse_bucket(bucket)
    prefix = "The specified bucket does not exist"
    try:
        branches = [b.name for b in await ctx.versioning.branches.list_branches(ref.repo)]
    except dom.RepoNotFound:
        return NoSuchBucket(f"{prefix}: repo {ref.repo} does not exist", BucketName=bucket)
    if ref.commit is not None:
        what = f"commit (or open commit) {ref.commit}"
    elif ref.branch is not None:
        what = f"branch or tag {ref.branch}"
    else:
        what = "default branch"  # only while it is being deleted
    return NoSuchBucket(
        f"{prefix}: repo {ref.repo} has no {what}; its branches are: {some_names(branches)}",
        BucketName=bucket,
    )


async def write_view(ctx: Context, req: S3Request) -> View:
    """The branch a write lands on, checked to exist but with its tree not
    loaded: only conditional writes need the tree, and they use view_of."""
    ref = bucket_of(req)
    if ref.commit is not None:
        return await view_of(ctx, req)  # a snapshot: the caller refuses it
    try:
        branch = await ctx.versioning.write_target(ref.repo, ref.branch)
    except dom.NotFound:
        return await view_of(ctx, req)  # a tag (the caller refuses it), or NoSuchBucket
    return View(ref.repo, branch, None, None)


def version_param(req: S3Request) -> str | None:
    """The `versionId` a request names: None when absent or "null" (no object
    has the null version: it means the current one), else a commit id
    (InvalidArgument when it is none)."""
    version = req.query.get("versionId")
    if version is None or version == "null":
        return None
    if not is_commit_hex(version):
        raise InvalidArgument(
            "Invalid version id specified", ArgumentName="versionId", ArgumentValue=version
        )
    return version


def check_key(key: str) -> None:
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise KeyTooLongError()


KeyEncoder = Callable[[str | None], str | None]


def key_encoder(req: S3Request) -> tuple[str | None, KeyEncoder]:
    """The `encoding-type` of a listing request and how to encode keys with it
    (`url`: percent-encoding, keeping '/'). None passes through as None."""
    encoding = req.query.get("encoding-type")
    if encoding is None:
        return None, lambda s: s
    if encoding != "url":
        raise InvalidArgument(
            "Invalid Encoding Method specified in Request", ArgumentName="encoding-type"
        )
    return "url", lambda s: quote(s, safe="/") if s is not None else None


def etag_matches(value: str, etag: str) -> bool:
    """Whether an If-Match / If-None-Match list (quoted or bare tags) names
    `etag`, or is `*`."""
    tags = [t.strip().strip('"') for t in value.split(",")]
    return "*" in tags or etag in tags


def _http_seconds(value: str) -> int | None:
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None  # not an HTTP-date: the condition is ignored (RFC 7232)


def failed_condition(
    headers: Mapping[str, str],
    entry: ObjectEntry,
    prefix: str = "",
    ignore_future_since: bool = False,
) -> str | None:
    """Evaluate RFC 7232 preconditions (headers `<prefix>if-match` etc.) on an
    object; returns the first that fails, or None.

    "If-Match" / "If-Unmodified-Since" failing means 412. "If-None-Match" /
    "If-Modified-Since" failing means "not modified": 304 for GET and HEAD,
    412 for a copy source. A holding If-Match overrides If-Unmodified-Since,
    and If-None-Match overrides If-Modified-Since, as the RFC orders them.
    """
    seconds = entry.last_modified // 1_000_000
    if_match = headers.get(prefix + "if-match")
    if if_match is not None:
        if not etag_matches(if_match, entry.etag):
            return "If-Match"
    elif (unmodified := headers.get(prefix + "if-unmodified-since")) is not None:
        limit = _http_seconds(unmodified)
        if limit is not None and seconds > limit:
            return "If-Unmodified-Since"
    if_none = headers.get(prefix + "if-none-match")
    if if_none is not None:
        if etag_matches(if_none, entry.etag):
            return "If-None-Match"
    elif (modified := headers.get(prefix + "if-modified-since")) is not None:
        limit = _http_seconds(modified)
        future = ignore_future_since and limit is not None and limit > time.time()
        if limit is not None and not future and seconds <= limit:
            return "If-Modified-Since"
    return None


def write_condition(req: S3Request) -> Check | None:
    """The If-None-Match / If-Match precondition of a write, as a check the
    committer runs against the exact tree the write lands on (so it is atomic
    against concurrent writers)."""
    if_none = req.headers.get("if-none-match")
    if_match = req.headers.get("if-match")
    if if_none is None and if_match is None:
        return None
    if if_none is not None and if_none.strip() != "*":
        raise NotImplementedErr("If-None-Match on a write accepts only '*'")
    key = req.key or ""

    async def check(src: tree.NodeSource, root: tree.Root) -> None:
        entry = await tree.lookup(src, root, key)
        if if_none is not None and entry is not None:
            raise dom.PreconditionFailed(f"{key} already exists (If-None-Match: *)")
        if if_match is not None:
            if entry is None:
                raise dom.ObjectNotFound(key)
            if not etag_matches(if_match, entry.etag):
                raise dom.PreconditionFailed(f"the ETag of {key} does not match If-Match")

    return check


@dataclass(frozen=True, slots=True)
class DeleteCondition:
    """What a conditional delete asks of the object it removes: its ETag
    (If-Match, `*` for any), size, or Last-Modified time (whole seconds)."""

    etag: str | None = None
    size: int | None = None
    modified: int | None = None

    def failure(self, entry: ObjectEntry | None) -> str | None:
        """None when the delete may go ahead; else "NoSuchKey" (an If-Match on
        a missing key, as S3) or "PreconditionFailed". A missing key meets a
        size or time condition: there is nothing to delete, as S3 answers."""
        if entry is None:
            return "NoSuchKey" if self.etag is not None else None
        if self.etag is not None and not etag_matches(self.etag, entry.etag):
            return "PreconditionFailed"
        if self.size is not None and entry.size != self.size:
            return "PreconditionFailed"
        if self.modified is not None and entry.last_modified // 1_000_000 != self.modified:
            return "PreconditionFailed"
        return None


def _timestamp(value: str, name: str) -> int:
    """Whole seconds of an HTTP date or an ISO 8601 timestamp."""
    text = value.strip()
    try:
        return int(parsedate_to_datetime(text).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        pass
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        raise InvalidArgument(
            f"{name} must be a timestamp", ArgumentName=name, ArgumentValue=value
        ) from None


def _size(value: str, name: str) -> int:
    text = value.strip()
    if not text.isdigit():
        raise InvalidArgument(
            f"{name} must be a non-negative integer", ArgumentName=name, ArgumentValue=value
        )
    return int(text)


def delete_condition(
    etag: str | None, size: str | None, modified: str | None, names: tuple[str, str, str]
) -> DeleteCondition | None:
    """A DeleteCondition from its three raw values (None: absent); `names`
    name them in errors. None when there is no condition."""
    if etag is None and size is None and modified is None:
        return None
    return DeleteCondition(
        etag=etag,
        size=_size(size, names[1]) if size is not None else None,
        modified=_timestamp(modified, names[2]) if modified is not None else None,
    )


def delete_check(conditions: Mapping[str, DeleteCondition], failed: dict[str, str]) -> Check:
    """A committer check for deletes with conditions: it records every key
    whose condition fails on the tree the delete lands on in `failed` (key ->
    S3 code) and then refuses the commit (PreconditionFailed), so nothing is
    deleted unless every remaining condition holds at commit time."""

    async def check(src: tree.NodeSource, root: tree.Root) -> None:
        failed.clear()
        for key, condition in conditions.items():
            code = condition.failure(await tree.lookup(src, root, key))
            if code is not None:
                failed[key] = code
        if failed:
            raise dom.PreconditionFailed(f"the delete conditions of {sorted(failed)} do not hold")

    return check


async def check_early(ctx: Context, view: View, check: Check | None) -> None:
    """Refuse a doomed conditional write before its body is uploaded; the
    committer checks again when it commits."""
    if check is not None:
        await ctx.versioning.check(view, check)


def attrs_from_headers(headers: Mapping[str, str]) -> ObjectAttrs:
    """What a write stores to send back on GET and HEAD: Content-Type, the
    STORED_HEADERS and x-amz-meta-*. Their values are echoed into response
    headers, so none may hold a line break or another control character
    (the HTTP parser refuses those already; this keeps them out of storage
    whatever the parser lets through)."""
    metadata = {
        name.removeprefix("x-amz-meta-"): value
        for name, value in headers.items()
        if name.startswith("x-amz-meta-")
    }
    stored = {name: headers[name] for name in STORED_HEADERS if name in headers}
    content_type = headers.get("content-type") or DEFAULT_CONTENT_TYPE
    for name, value in [
        ("content-type", content_type),
        *stored.items(),
        *((f"x-amz-meta-{k}", v) for k, v in metadata.items()),
    ]:
        problem = header_unsafe(value)
        if problem is not None:
            raise InvalidArgument(f"The {name} header {problem}", ArgumentName=name)
    return ObjectAttrs(content_type, metadata, stored, tags.from_header(headers))


def check_canned_acl(headers: Mapping[str, str], served: bool = False) -> None:
    """An x-amz-acl that names no canned ACL S3 defines is InvalidArgument
    (400). With `served`, one that S3 defines but loxo does not serve is
    NotImplemented (501) here too (routing.UNSUPPORTED_HEADERS does that for
    object writes)."""
    raw = headers.get("x-amz-acl")
    value = raw.strip().lower() if raw is not None else ""
    if not value:
        return
    if value not in routing.CANNED_ACLS:
        raise InvalidArgument(
            f"{raw!r} is not a canned ACL; use one of " + ", ".join(routing.CANNED_ACLS),
            ArgumentName="x-amz-acl",
            ArgumentValue=raw or "",
        )
    if served and value not in routing.SERVED_ACLS:
        raise NotImplementedErr(
            f"loxo supports only the private ACL (the owner with FULL_CONTROL); the canned ACL "
            f"{value!r} is not implemented",
            Header="x-amz-acl",
        )


def object_headers(
    entry: ObjectEntry, version: str | None, with_checksums: bool = False
) -> dict[str, str]:
    headers = {
        "ETag": f'"{entry.etag}"',
        "Last-Modified": http_date(entry.last_modified),
        "Content-Type": entry.content_type,
        "Accept-Ranges": "bytes",
    }
    headers.update(entry.headers)
    for name, value in entry.metadata.items():
        headers[f"x-amz-meta-{name}"] = value
    if META_JOB in entry.metadata:
        # A pipeline's output: one header any S3 client can read says where it came from.
        headers["x-loxo-provenance"] = "; ".join(
            f"{k.removeprefix('loxo-')}={entry.metadata[k]}"
            for k in META_KEYS
            if k in entry.metadata
        )
    if version is not None:
        headers["x-amz-version-id"] = version
    if entry.tags:
        headers["x-amz-tagging-count"] = str(len(entry.tags))
    if with_checksums:
        for name, value in entry.checksums.items():
            if name in checksums.ALGORITHMS:
                headers[f"x-amz-checksum-{name}"] = value
    return headers
