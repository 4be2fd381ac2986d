"""Answers for what clients probe but loxo has no model of: ACLs, bucket tags, versioning.

Each answer is the truth about loxo, said in S3's words:
- ACLs: one owner ("loxo") with FULL_CONTROL, nothing else. Setting the
  private ACL (canned or spelled out) is accepted because it changes nothing;
  any other ACL is NotImplemented, never a silent success.
- Bucket tags: there are none. GetBucketTagging answers NoSuchTagSet, as S3
  does for an untagged bucket; deleting them succeeds; setting them is
  NotImplemented (routing). Object tags are real: see tagging.py.
- Versioning is always Enabled: every write is a commit. Enabling it is
  accepted; suspending it is refused.
"""

from __future__ import annotations

from starlette.responses import Response

from s3api import routing, xml
from s3api.errors import (
    InvalidBucketState,
    MalformedACLError,
    MalformedXML,
    MissingSecurityHeader,
    NoSuchTagSet,
    NotImplementedErr,
)
from s3api.operations.common import (
    Context,
    bucket_of,
    check_canned_acl,
    version_param,
    view_of,
)
from s3api.operations.copy import CopySource, source_of
from s3api.request import S3Request

OWNER_ID = "loxo"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"


def _xml(body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, media_type="application/xml", headers=headers)


async def _object_version(ctx: Context, req: S3Request) -> str | None:
    """Check the addressed object (and versionId) exists; returns the commit that
    made it, for x-amz-version-id."""
    assert req.key is not None and req.bucket_name is not None
    version = version_param(req)
    bucket_of(req)  # InvalidBucketName first
    _, entry = await source_of(ctx, CopySource(req.bucket_name, req.key, version))
    commit = await ctx.versioning.commit_of(entry)
    return commit.hex() if commit is not None else None


# -- ACLs ---------------------------------------------------------------------


def _policy() -> bytes:
    grantee = (
        f'<Grantee xmlns:xsi="{_XSI}" xsi:type="CanonicalUser">'
        f"<ID>{OWNER_ID}</ID><DisplayName>{OWNER_ID}</DisplayName></Grantee>"
    )
    return (
        f'{xml.HEADER}<AccessControlPolicy xmlns="{xml.NS}">'
        f"<Owner><ID>{OWNER_ID}</ID><DisplayName>{OWNER_ID}</DisplayName></Owner>"
        f"<AccessControlList><Grant>{grantee}<Permission>FULL_CONTROL</Permission></Grant>"
        "</AccessControlList></AccessControlPolicy>"
    ).encode()


def _not_private(what: str) -> NotImplementedErr:
    return NotImplementedErr(
        f"loxo supports only the private ACL (the owner with FULL_CONTROL); {what} is not "
        "implemented"
    )


async def _check_private_acl(req: S3Request) -> None:
    """Accept a PutBucketAcl/PutObjectAcl that sets the private ACL, which is the
    only one there is; refuse any other with NotImplemented."""
    grants = [h for h in req.headers if h.startswith("x-amz-grant-")]
    if grants:
        raise _not_private(f"granting through {', '.join(sorted(grants))}")
    canned = req.headers.get("x-amz-acl")
    length = req.headers.get("content-length")
    chunked = "chunked" in req.headers.get("transfer-encoding", "")
    has_body = chunked or (length is not None and length.strip() != "0")
    body = await req.small_body() if has_body else b""
    if canned is not None:
        check_canned_acl(req.headers)  # InvalidArgument for no canned ACL at all
        # With a single owner, bucket-owner-full-control is the private ACL.
        if canned.strip().lower() not in routing.SERVED_ACLS:
            raise _not_private(f"the canned ACL {canned.strip()!r}")
        return
    if not body.strip():
        # Neither a canned ACL nor a policy: the request sets nothing.
        raise MissingSecurityHeader(
            "Your request was missing a required header: x-amz-acl or an AccessControlPolicy body",
            MissingHeaderName="x-amz-acl",
        )
    try:
        doc = xml.parse(body, "AccessControlPolicy")
    except MalformedXML:
        raise MalformedACLError() from None
    acl = doc.get("AccessControlList")
    items = xml.as_list(acl.get("Grant")) if isinstance(acl, dict) else []
    for grant in items:
        if not isinstance(grant, dict):
            raise MalformedACLError()
        grantee = grant.get("Grantee")
        grantee_id = grantee.get("ID") if isinstance(grantee, dict) else None
        permission = grant.get("Permission")
        if grantee_id != OWNER_ID or permission != "FULL_CONTROL":
            raise _not_private("a grant other than the owner's FULL_CONTROL")


async def get_bucket_acl(ctx: Context, req: S3Request) -> Response:
    await view_of(ctx, req)
    return _xml(_policy())


async def put_bucket_acl(ctx: Context, req: S3Request) -> Response:
    await view_of(ctx, req)
    await _check_private_acl(req)
    return Response(status_code=200)


async def get_object_acl(ctx: Context, req: S3Request) -> Response:
    version = await _object_version(ctx, req)
    return _xml(_policy(), {"x-amz-version-id": version} if version else None)


async def put_object_acl(ctx: Context, req: S3Request) -> Response:
    version = await _object_version(ctx, req)
    await _check_private_acl(req)
    return Response(status_code=200, headers={"x-amz-version-id": version} if version else None)


# -- tags -----------------------------------------------------------------------


async def get_bucket_tagging(ctx: Context, req: S3Request) -> Response:
    await view_of(ctx, req)
    raise NoSuchTagSet(BucketName=req.bucket_name or "")


async def delete_bucket_tagging(ctx: Context, req: S3Request) -> Response:
    await view_of(ctx, req)
    return Response(status_code=204)


# -- versioning -------------------------------------------------------------------


async def get_bucket_versioning(ctx: Context, req: S3Request) -> Response:
    await view_of(ctx, req)
    return _xml(xml.document("VersioningConfiguration", [("Status", "Enabled")]))


async def put_bucket_versioning(ctx: Context, req: S3Request) -> Response:
    await view_of(ctx, req)
    doc = xml.parse(await req.small_body(), "VersioningConfiguration")
    status = doc.get("Status")
    mfa = doc.get("MfaDelete")
    if status not in (None, "Enabled", "Suspended") or mfa not in (None, "Enabled", "Disabled"):
        raise MalformedXML()
    if status == "Suspended":
        raise InvalidBucketState(
            "loxo keeps every version: every write is a commit, so versioning is always "
            "Enabled and cannot be suspended."
        )
    if mfa == "Enabled":
        raise NotImplementedErr("MFA Delete is not implemented by loxo")
    return Response(status_code=200)
