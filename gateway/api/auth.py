"""Control API authentication: AWS Signature Version 4 with the S3 keys.

Any SigV4 signer works, with any region and service name in its scope (e.g.
`curl --aws-sigv4 "aws:amz:us-east-1:s3" --user KEY:SECRET`). The payload is
covered by the signature: x-amz-content-sha256 must be the SHA-256 of the
body when given (UNSIGNED-PAYLOAD is accepted, as S3 does); when missing, the
body's SHA-256 is what the signature must cover, as for other AWS services.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

from gateway.api.errors import ApiError
from s3api import sigv4
from s3api.errors import S3Error

MAX_BODY = 1 << 20


def authenticate(
    secrets: Callable[[str], str | None],
    method: str,
    raw_path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    """The access key of a correctly signed request; ApiError otherwise."""
    digest = hashlib.sha256(body).hexdigest()
    given = headers.get("x-amz-content-sha256")
    if given is None:
        headers = {**headers, "x-amz-content-sha256": digest}
    elif given != sigv4.UNSIGNED_PAYLOAD and given != digest:
        raise ApiError(
            400, "invalid_request", "x-amz-content-sha256 does not match the request body"
        )
    try:
        signed = sigv4.parse(method, raw_path, query, headers, any_service=True)
        if signed is None:
            raise ApiError(
                401,
                "unauthenticated",
                "sign requests with AWS SigV4 using loxo's access key and secret key "
                "(e.g. curl --aws-sigv4 aws:amz:us-east-1:s3 --user KEY:SECRET)",
            )
        secret = secrets(signed.credential.access_key)
        if secret is None:
            raise ApiError(403, "access_denied", "the access key is not known to this server")
        sigv4.verify(signed, secret, method, raw_path, query, headers, double_encoded=True)
    except S3Error as err:
        raise ApiError(403, "access_denied", err.message) from None
    return signed.credential.access_key
