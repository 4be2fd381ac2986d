"""ListObjectVersions: an object's versions are the commits that changed it.

(Being implemented: answers NotImplemented until the history index lands.)
"""

from __future__ import annotations

from starlette.responses import Response

from s3api.errors import NotImplementedErr
from s3api.operations.common import Context
from s3api.request import S3Request


async def list_object_versions(ctx: Context, req: S3Request) -> Response:
    raise NotImplementedErr("ListObjectVersions is not implemented yet")
