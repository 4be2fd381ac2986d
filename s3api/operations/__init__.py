"""S3 actions, one function each, by the name AWS gives the action."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.responses import Response

from s3api.operations import (
    attributes,
    buckets,
    complete,
    copy,
    delete_objects,
    listing,
    multipart,
    objects,
    stubs,
    tagging,
    versions,
)
from s3api.operations.common import Context
from s3api.request import S3Request

Handler = Callable[[Context, S3Request], Awaitable[Response]]

ACTIONS: dict[str, Handler] = {
    "ListBuckets": buckets.list_buckets,
    "CreateBucket": buckets.create_bucket,
    "DeleteBucket": buckets.delete_bucket,
    "HeadBucket": buckets.head_bucket,
    "GetBucketLocation": buckets.get_bucket_location,
    "ListObjects": listing.list_objects,
    "DeleteObjects": delete_objects.delete_objects,
    "PutObject": objects.put_object,
    "CopyObject": copy.copy_object,
    "GetObject": objects.get_object,
    "HeadObject": objects.head_object,
    "DeleteObject": objects.delete_object,
    "CreateMultipartUpload": multipart.create_multipart_upload,
    "UploadPart": multipart.upload_part,
    "UploadPartCopy": copy.upload_part_copy,
    "ListParts": multipart.list_parts,
    "CompleteMultipartUpload": complete.complete_multipart_upload,
    "AbortMultipartUpload": multipart.abort_multipart_upload,
    "ListMultipartUploads": multipart.list_multipart_uploads,
    "ListObjectVersions": versions.list_object_versions,
    "GetBucketAcl": stubs.get_bucket_acl,
    "PutBucketAcl": stubs.put_bucket_acl,
    "GetObjectAcl": stubs.get_object_acl,
    "PutObjectAcl": stubs.put_object_acl,
    "GetBucketTagging": stubs.get_bucket_tagging,
    "DeleteBucketTagging": stubs.delete_bucket_tagging,
    "GetObjectTagging": tagging.get_object_tagging,
    "PutObjectTagging": tagging.put_object_tagging,
    "DeleteObjectTagging": tagging.delete_object_tagging,
    "GetObjectAttributes": attributes.get_object_attributes,
    "GetBucketVersioning": stubs.get_bucket_versioning,
    "PutBucketVersioning": stubs.put_bucket_versioning,
}
