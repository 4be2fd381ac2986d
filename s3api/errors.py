"""S3 errors: one class per S3 error code, and the one table mapping domain errors to them.

Every error the S3 layer answers with is an S3Error. Handlers raise these (or
let versioning errors propagate); `from_domain` is the only place a domain
error becomes an S3 code.
"""

from __future__ import annotations

from versioning import errors as dom


class S3Error(Exception):
    code = "InternalError"
    status = 500
    default_message = "We encountered an internal error. Please try again."

    def __init__(self, message: str | None = None, **extra: str) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.extra = extra  # extra elements for the XML body, e.g. BucketName


def _error(code: str, status: int, message: str) -> type[S3Error]:
    return type(code, (S3Error,), {"code": code, "status": status, "default_message": message})


AccessDenied = _error("AccessDenied", 403, "Access Denied")
AuthorizationHeaderMalformed = _error(
    "AuthorizationHeaderMalformed", 400, "The authorization header is malformed."
)
AuthorizationQueryParametersError = _error(
    "AuthorizationQueryParametersError", 400, "The query-string authorization is malformed."
)
BadDigest = _error(
    "BadDigest", 400, "The Content-MD5 or checksum you specified did not match what we received."
)
BucketAlreadyOwnedByYou = _error(
    "BucketAlreadyOwnedByYou", 409, "Your previous request to create the named bucket succeeded."
)
BucketNotEmpty = _error("BucketNotEmpty", 409, "The bucket you tried to delete is not empty.")
EntityTooLarge = _error(
    "EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed size."
)
EntityTooSmall = _error(
    "EntityTooSmall", 400, "Your proposed upload is smaller than the minimum allowed object size."
)
IncompleteBody = _error(
    "IncompleteBody", 400, "You did not provide the number of bytes specified by the Content-Length."
)
InternalError = _error("InternalError", 500, "We encountered an internal error. Please try again.")
InvalidAccessKeyId = _error(
    "InvalidAccessKeyId", 403, "The AWS access key ID you provided does not exist in our records."
)
InvalidArgument = _error("InvalidArgument", 400, "Invalid Argument")
InvalidBucketName = _error("InvalidBucketName", 400, "The specified bucket is not valid.")
InvalidDigest = _error("InvalidDigest", 400, "The Content-MD5 you specified is not valid.")
InvalidPart = _error(
    "InvalidPart",
    400,
    "One or more of the specified parts could not be found. The part may not have been "
    "uploaded, or the specified entity tag may not match the part's entity tag.",
)
InvalidPartOrder = _error(
    "InvalidPartOrder", 400, "The list of parts was not in ascending order."
)
InvalidRange = _error("InvalidRange", 416, "The requested range is not satisfiable")
InvalidRequest = _error("InvalidRequest", 400, "Invalid Request")
KeyTooLongError = _error("KeyTooLongError", 400, "Your key is too long")
MalformedXML = _error(
    "MalformedXML", 400, "The XML you provided was not well-formed or did not validate."
)
MethodNotAllowed = _error(
    "MethodNotAllowed", 405, "The specified method is not allowed against this resource."
)
MissingContentLength = _error(
    "MissingContentLength", 411, "You must provide the Content-Length HTTP header."
)
MissingSecurityHeader = _error(
    "MissingSecurityHeader", 400, "Your request is missing a required header."
)
NoSuchBucket = _error("NoSuchBucket", 404, "The specified bucket does not exist")
NoSuchKey = _error("NoSuchKey", 404, "The specified key does not exist.")
NoSuchUpload = _error(
    "NoSuchUpload",
    404,
    "The specified upload does not exist. The upload ID may be invalid, or the upload may "
    "have been aborted or completed.",
)
NotImplementedErr = _error(
    "NotImplemented", 501, "A header you provided implies functionality that is not implemented."
)
PreconditionFailed = _error(
    "PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold"
)
RequestTimeTooSkewed = _error(
    "RequestTimeTooSkewed",
    403,
    "The difference between the request time and the server's time is too large.",
)
ServiceUnavailable = _error("ServiceUnavailable", 503, "Please reduce your request rate.")
SignatureDoesNotMatch = _error(
    "SignatureDoesNotMatch",
    403,
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method.",
)
XAmzContentSHA256Mismatch = _error(
    "XAmzContentSHA256Mismatch",
    400,
    "The provided 'x-amz-content-sha256' header does not match what was computed.",
)


# The one table from domain errors to S3 errors. Order matters: the first
# matching class wins, so subclasses come before their bases.
_DOMAIN_TABLE: list[tuple[type[dom.VersioningError], type[S3Error]]] = [
    (dom.RepoNotFound, NoSuchBucket),
    (dom.BranchNotFound, NoSuchBucket),
    (dom.CommitNotFound, NoSuchBucket),
    (dom.ObjectNotFound, NoSuchKey),
    (dom.UploadNotFound, NoSuchUpload),
    (dom.RepoExists, BucketAlreadyOwnedByYou),
    (dom.BranchExists, BucketAlreadyOwnedByYou),
    (dom.InvalidName, InvalidBucketName),
    (dom.BranchNotEmpty, BucketNotEmpty),
    (dom.ReadOnlyRef, AccessDenied),
    (dom.InvalidPart, InvalidPart),
    (dom.InvalidPartOrder, InvalidPartOrder),
    (dom.EntityTooSmall, EntityTooSmall),
    (dom.PreconditionFailed, PreconditionFailed),
    (dom.ConcurrentUpdate, ServiceUnavailable),
    (dom.CorruptData, InternalError),
]


def from_domain(exc: dom.VersioningError) -> S3Error:
    for domain_cls, s3_cls in _DOMAIN_TABLE:
        if isinstance(exc, domain_cls):
            message = str(exc) or None
            # Not-found and exists errors carry the name, not a sentence: keep
            # S3's wording for those.
            if isinstance(exc, dom.NotFound | dom.AlreadyExists):
                message = None
            return s3_cls(message)
    return InternalError()
