"""Routing: a pure function from (method, bucket?, key?, query) to an S3 action name.

The table is the whole URL surface of the S3 API in one place. Sub-resources
we do not implement route to NotImplemented, never to a wrong success; so do
request headers asking a write for a feature loxo lacks (UNSUPPORTED_HEADERS).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

# Sub-resources S3 defines on buckets and objects that loxo does not serve
# (for acl, attributes, tagging, versioning, versions and uploads: with any
# method the tables below do not route).
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
# UploadPartCopy (header_action names them).
_OBJECT: list[tuple[str, str | None, str]] = [
    ("GET", "acl", "GetObjectAcl"),
    ("PUT", "acl", "PutObjectAcl"),
    ("GET", "tagging", "GetObjectTagging"),
    ("PUT", "tagging", "PutObjectTagging"),
    ("DELETE", "tagging", "DeleteObjectTagging"),
    ("GET", "attributes", "GetObjectAttributes"),
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


# --------------------------------------------------------------------------- request headers

# The writes that store an object or a part. PutObject and UploadPart with
# x-amz-copy-source are named CopyObject and UploadPartCopy here.
OBJECT_WRITES = ("PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart", "UploadPartCopy")


# The canned ACLs S3 defines, and the ones loxo serves. An x-amz-acl naming
# none of them is malformed (400 InvalidArgument, answered by the action), not
# a request for a feature loxo lacks.
CANNED_ACLS = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
    "log-delivery-write",
)
SERVED_ACLS = ("private", "bucket-owner-full-control")
# The object writes whose operation checks x-amz-acl values itself.
ACL_CHECKED = ("PutObject", "CopyObject", "CreateMultipartUpload")


@dataclass(frozen=True)
class HeaderRule:
    """`header` (a name, or a name prefix ending in "*") on one of `actions`
    asks for a feature loxo does not have, unless its value is empty or one of
    `served` (compared case-insensitively). With `known`, a value outside it
    is not a feature but an error, which the actions in `checked_by` answer
    themselves (the rule leaves it to them)."""

    header: str
    served: tuple[str, ...] = ()
    actions: tuple[str, ...] = OBJECT_WRITES
    known: tuple[str, ...] = ()
    checked_by: tuple[str, ...] = ()

    def names(self, name: str) -> bool:
        if self.header.endswith("*"):
            return name.startswith(self.header[:-1])
        return name == self.header

    def refuses(self, value: str, action: str = "") -> bool:
        value = value.strip().lower()
        if self.known and action in self.checked_by and value not in self.known:
            return False  # malformed: the action answers InvalidArgument
        return bool(value) and value not in {v.lower() for v in self.served}

    @property
    def accepted(self) -> str:
        """The values loxo serves, in words (for docs/errors.md)."""
        return ", ".join(["absent or empty", *(f"`{v}`" for v in self.served)])


# Answered 501 NotImplemented instead of storing the object without the feature.
# Single-owner ACLs: "private" and "bucket-owner-full-control" both mean the
# owner alone has FULL_CONTROL, which is the only ACL there is (rclone sends
# x-amz-acl: private on every write).
UNSUPPORTED_HEADERS: tuple[HeaderRule, ...] = (
    HeaderRule("x-amz-server-side-encryption*", served=("none",)),
    HeaderRule("x-amz-object-lock-*"),
    HeaderRule("x-amz-website-redirect-location"),
    HeaderRule("x-amz-grant-*"),
    HeaderRule("x-amz-acl", served=SERVED_ACLS, known=CANNED_ACLS, checked_by=ACL_CHECKED),
    HeaderRule("x-amz-storage-class", served=("STANDARD",)),
)


def header_action(action: str, headers: Mapping[str, str]) -> str:
    """The action name the header rules use: PutObject and UploadPart with
    x-amz-copy-source are CopyObject and UploadPartCopy."""
    if "x-amz-copy-source" in headers:
        return {"PutObject": "CopyObject", "UploadPart": "UploadPartCopy"}.get(action, action)
    return action


def unsupported_header(action: str, headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The first (name, value) in `headers` (lower-case names) that asks
    `action` for a feature loxo does not implement; None when there is none."""
    named = header_action(action, headers)
    for rule in UNSUPPORTED_HEADERS:
        if named not in rule.actions:
            continue
        for name in sorted(headers):
            if rule.names(name) and rule.refuses(headers[name], named):
                return name, headers[name]
    return None
