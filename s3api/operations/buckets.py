"""Bucket actions: ListBuckets, CreateBucket, DeleteBucket, HeadBucket, GetBucketLocation.

A bucket is a repo's branch (`repo` = its default branch, `repo.branch`) or a
read-only snapshot (`repo.<commit id>`).
"""

from __future__ import annotations

from starlette.responses import Response

from s3api import xml
from s3api.errors import AccessDenied, BucketAlreadyOwnedByYou
from s3api.operations.common import Context, bucket_of, check_canned_acl, no_such_bucket, view_of
from s3api.request import S3Request
from versioning import errors as dom

OWNER = [("ID", "loxo"), ("DisplayName", "loxo")]


async def list_buckets(ctx: Context, req: S3Request) -> Response:
    """Every branch as a bucket: a repo's default branch by the bare repo name
    (the bucket CreateBucket made), any other as `repo.branch`."""
    defaults = await ctx.versioning.branches.default_branches()
    branches = await ctx.versioning.branches.list_branches()
    buckets = [
        (
            "Bucket",
            [
                ("Name", b.repo if defaults.get(b.repo) == b.name else f"{b.repo}.{b.name}"),
                ("CreationDate", xml.iso8601(b.created)),
            ],
        )
        for b in branches
    ]
    body = xml.document("ListAllMyBucketsResult", [("Owner", OWNER), ("Buckets", buckets)])
    return Response(body, media_type="application/xml")


async def create_bucket(ctx: Context, req: S3Request) -> Response:
    ref = bucket_of(req)
    check_canned_acl(req.headers, served=True)
    await req.small_body()  # an optional CreateBucketConfiguration; the region is ours
    if ref.commit is not None:
        raise AccessDenied(
            f"{ref.name} names a commit snapshot; snapshots are read-only and cannot be created"
        )
    try:
        if ref.branch is not None:
            await ctx.versioning.branches.ensure_branch(ref.repo, ref.branch)
        else:
            await ctx.versioning.branches.create_repo(ref.repo)
    except dom.AlreadyExists:
        # As AWS: re-creating a bucket you own succeeds in us-east-1 (its
        # legacy behaviour, which clients rely on) and is refused elsewhere.
        if ctx.region != "us-east-1":
            raise BucketAlreadyOwnedByYou(BucketName=ref.name) from None
    return Response(status_code=200, headers={"Location": f"/{req.bucket_name}"})


async def delete_bucket(ctx: Context, req: S3Request) -> Response:
    ref = bucket_of(req)
    if ref.commit is not None:
        raise AccessDenied(f"{ref.name} is a commit snapshot; snapshots are read-only")
    try:
        branch = ref.branch or await ctx.versioning.branches.default_branch(ref.repo)
        await ctx.versioning.branches.delete_branch(
            ref.repo, branch, only_if_empty=True, may_drop_repo=True
        )
    except dom.NotFound:
        raise await no_such_bucket(ctx, req.bucket_name or ref.name) from None
    return Response(status_code=204)


async def head_bucket(ctx: Context, req: S3Request) -> Response:
    await view_of(ctx, req)
    return Response(status_code=200, headers={"x-amz-bucket-region": ctx.region})


async def get_bucket_location(ctx: Context, req: S3Request) -> Response:
    await view_of(ctx, req)
    # us-east-1 is answered as an empty constraint, as AWS does.
    location = "" if ctx.region == "us-east-1" else ctx.region
    body = (
        xml.document("LocationConstraint", [])
        if not location
        else (
            xml.HEADER + f'<LocationConstraint xmlns="{xml.NS}">{location}</LocationConstraint>'
        ).encode()
    )
    return Response(body, media_type="application/xml")
