"""Control API authentication: AWS Signature Version 4 with the S3 keys.

Any SigV4 signer works, with any region and service name in its scope (e.g.
`curl --aws-sigv4 "aws:amz:us-east-1:s3" --user KEY:SECRET`). The body is
covered by the signature: x-amz-content-sha256 must be its SHA-256 when
given; when missing, the body's SHA-256 is what the signature must cover, as
for other AWS services. UNSIGNED-PAYLOAD is refused on a request with a body.
Presigned URLs (query-string SigV4) work for requests without a body.

Signature Version 2 is refused here (the S3 endpoint accepts it): it signs
no body, and every control-API change is a JSON body. Signing failures
(gateway.signing.errors) answer 403 access_denied with the signing layer's
message, a non-ASCII access key included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

from gateway.api.errors import ApiError
from gateway.signing import sigv4
from gateway.signing.errors import SignatureDoesNotMatch, SigningError

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
    if given == sigv4.UNSIGNED_PAYLOAD and body:
        # The signature must cover what the request asks for.
        raise ApiError(
            400,
            "invalid_request",
            "x-amz-content-sha256 must be the body's SHA-256 (UNSIGNED-PAYLOAD leaves the "
            "body unsigned)",
        )
    if given is None and "authorization" in headers:
        headers = {**headers, "x-amz-content-sha256": digest}
    elif given is None and body and any(k == "X-Amz-Signature" for k, _ in query):
        raise ApiError(400, "invalid_request", "a presigned URL cannot carry a request body")
    elif given is not None and given != sigv4.UNSIGNED_PAYLOAD and given != digest:
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
        try:
            sigv4.verify(signed, secret, method, raw_path, query, headers, double_encoded=True)
        except SignatureDoesNotMatch:
            if not signed.presigned or given is not None:
                raise
            # A presigned URL signs UNSIGNED-PAYLOAD (S3 signers) or the empty
            # body's hash (signers of other services): either is fine here.
            hashed = {**headers, "x-amz-content-sha256": digest}
            signed = sigv4.parse(method, raw_path, query, hashed, any_service=True)
            assert signed is not None
            sigv4.verify(signed, secret, method, raw_path, query, hashed, double_encoded=True)
    except SigningError as err:
        raise ApiError(403, "access_denied", err.message) from None
    return signed.credential.access_key
