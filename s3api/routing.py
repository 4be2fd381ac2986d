"""Routing: a pure function from (method, bucket?, key?, query) to an S3 action name.

The table is the whole URL surface of the S3 API in one place. Sub-resources
we do not implement route to NotImplemented, never to a wrong success.
"""

from __future__ import annotations

from collections.abc import Collection

# Sub-resources S3 defines on buckets and objects that loxo does not serve
# (for acl, tagging, versioning, versions and uploads: with any method the
# tables below do not route).
UNSUPPORTED_SUBRESOURCES = frozenset(
    {
        "accelerate",
        "analytics",
        "cors",
        "encryption",
        "intelligent-tiering",
        "inventory",
        "lifecycle",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "ownershipControls",
        "policy",
        "policyStatus",
        "publicAccessBlock",
        "replication",
        "requestPayment",
        "website",
        "legal-hold",
        "retention",
        "torrent",
        "restore",
        "select",
        "attributes",
        "acl",
        "tagging",
        "versioning",
        "versions",
        "uploads",
    }
)

# (method, query flag) -> action, checked in order; the first flag present wins.
_SERVICE = {"GET": "ListBuckets"}

_BUCKET: list[tuple[str, str | None, str]] = [
    ("GET", "location", "GetBucketLocation"),
    ("GET", "uploads", "ListMultipartUploads"),
    ("GET", "versions", "ListObjectVersions"),
    ("GET", "acl", "GetBucketAcl"),
    ("PUT", "acl", "PutBucketAcl"),
    ("GET", "tagging", "GetBucketTagging"),
    ("DELETE", "tagging", "DeleteBucketTagging"),
    ("GET", "versioning", "GetBucketVersioning"),
    ("PUT", "versioning", "PutBucketVersioning"),
    ("POST", "delete", "DeleteObjects"),
    ("GET", None, "ListObjects"),  # v1 or v2 by list-type
    ("HEAD", None, "HeadBucket"),
    ("PUT", None, "CreateBucket"),
    ("DELETE", None, "DeleteBucket"),
]

# PutObject and UploadPart with x-amz-copy-source are CopyObject and
# UploadPartCopy: their handlers dispatch on the header.
_OBJECT: list[tuple[str, str | None, str]] = [
    ("GET", "acl", "GetObjectAcl"),
    ("PUT", "acl", "PutObjectAcl"),
    ("GET", "tagging", "GetObjectTagging"),
    ("DELETE", "tagging", "DeleteObjectTagging"),
    ("POST", "uploads", "CreateMultipartUpload"),
    ("POST", "uploadId", "CompleteMultipartUpload"),
    ("PUT", "uploadId", "UploadPart"),
    ("GET", "uploadId", "ListParts"),
    ("DELETE", "uploadId", "AbortMultipartUpload"),
    ("GET", None, "GetObject"),
    ("HEAD", None, "HeadObject"),
    ("PUT", None, "PutObject"),
    ("DELETE", None, "DeleteObject"),
]


def route(method: str, bucket: str | None, key: str | None, query: Collection[str]) -> str:
    """The S3 action for a request; "NotImplemented" or "MethodNotAllowed" otherwise."""
    if not bucket:
        return _SERVICE.get(method, "MethodNotAllowed")
    table = _OBJECT if key else _BUCKET
    for verb, flag, action in table:
        if verb == method and flag is not None and flag in query:
            return action
    if any(q in UNSUPPORTED_SUBRESOURCES for q in query):
        return "NotImplemented"
    for verb, flag, action in table:
        if verb == method and flag is None:
            return action
    return "MethodNotAllowed"
