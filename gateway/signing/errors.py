"""Signing errors, in AWS's authentication codes.

These codes (AccessDenied, SignatureDoesNotMatch, ...) are the same for every
AWS service, so they are the signing layer's own words. Each carries a
message and extra fields (element name -> text, e.g. StringToSign); the HTTP
status and the document shape are the protocol's business
(s3api.errors.from_signing, gateway.api.auth).
"""

from __future__ import annotations


class SigningError(Exception):
    """A request whose signature is missing, malformed, stale or wrong."""

    code = "AccessDenied"
    default_message = "Access Denied"

    def __init__(self, message: str | None = None, **extra: str) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.extra = extra  # extra fields for the error document, e.g. StringToSign


class AccessDenied(SigningError):
    code = "AccessDenied"
    default_message = "Access Denied"


class AuthorizationHeaderMalformed(SigningError):
    code = "AuthorizationHeaderMalformed"
    default_message = "The authorization header is malformed."


class AuthorizationQueryParametersError(SigningError):
    code = "AuthorizationQueryParametersError"
    default_message = "The query-string authorization is malformed."


class InvalidAccessKeyId(SigningError):
    code = "InvalidAccessKeyId"
    default_message = "The AWS access key ID you provided does not exist in our records."


class InvalidArgument(SigningError):
    code = "InvalidArgument"
    default_message = "Invalid Argument"


class InvalidRequest(SigningError):
    code = "InvalidRequest"
    default_message = "Invalid Request"


class RequestTimeTooSkewed(SigningError):
    code = "RequestTimeTooSkewed"
    default_message = "The difference between the request time and the server's time is too large."


class SignatureDoesNotMatch(SigningError):
    code = "SignatureDoesNotMatch"
    default_message = (
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method."
    )


def check_access_key(access_key: str) -> None:
    """An access key is printable ASCII (AWS's are A-Z and 0-9); anything else cannot
    name a key, and must not reach a credential lookup (hmac.compare_digest refuses
    non-ASCII strings)."""
    if not access_key.isascii() or not access_key.isprintable():
        raise InvalidAccessKeyId()
