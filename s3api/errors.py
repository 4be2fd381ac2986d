"""S3 errors: one class per S3 error code, and the tables mapping domain and signing
errors to them.

Every error the S3 layer answers with is an S3Error. Handlers raise these (or
let versioning errors propagate); `from_domain` is the only place a domain
error becomes an S3 code, `from_signing` the only place a signing error does.
"""

from __future__ import annotations

from gateway.signing import errors as signing
from versioning import errors as dom


class S3Error(Exception):
    code = "InternalError"
    status = 500
    default_message = "We encountered an internal error. Please try again."

    def __init__(self, message: str | None = None, **extra: str) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.extra = extra  # extra elements for the XML body, e.g. BucketName
        # Response headers the error carries (x-amz-delete-marker, say).
        self.headers: dict[str, str] = {}


class AccessDenied(S3Error):
    code = "AccessDenied"
    status = 403
    default_message = "Access Denied"


class AuthorizationHeaderMalformed(S3Error):
    code = "AuthorizationHeaderMalformed"
    status = 400
    default_message = "The authorization header is malformed."


class AuthorizationQueryParametersError(S3Error):
    code = "AuthorizationQueryParametersError"
    status = 400
    default_message = "The query-string authorization is malformed."


class BadRequest(S3Error):
    """What S3 answers for a request it cannot parse as HTTP."""

    code = "BadRequest"
    status = 400
    default_message = "An error occurred when parsing the HTTP request."


class BadDigest(S3Error):
    code = "BadDigest"
    status = 400
    default_message = "The Content-MD5 or checksum you specified did not match what we received."


class BucketAlreadyOwnedByYou(S3Error):
    code = "BucketAlreadyOwnedByYou"
    status = 409
    default_message = "Your previous request to create the named bucket succeeded."


class BucketNotEmpty(S3Error):
    code = "BucketNotEmpty"
    status = 409
    default_message = "The bucket you tried to delete is not empty."


class EntityTooLarge(S3Error):
    code = "EntityTooLarge"
    status = 400
    default_message = "Your proposed upload exceeds the maximum allowed size."


class EntityTooSmall(S3Error):
    code = "EntityTooSmall"
    status = 400
    default_message = "Your proposed upload is smaller than the minimum allowed object size."


class IncompleteBody(S3Error):
    code = "IncompleteBody"
    status = 400
    default_message = "You did not provide the number of bytes specified by the Content-Length."


class InternalError(S3Error):
    code = "InternalError"
    status = 500
    default_message = "We encountered an internal error. Please try again."


class InvalidAccessKeyId(S3Error):
    code = "InvalidAccessKeyId"
    status = 403
    default_message = "The AWS access key ID you provided does not exist in our records."


class InvalidArgument(S3Error):
    code = "InvalidArgument"
    status = 400
    default_message = "Invalid Argument"


class InvalidBucketName(S3Error):
    code = "InvalidBucketName"
    status = 400
    default_message = "The specified bucket is not valid."


class InvalidBucketState(S3Error):
    code = "InvalidBucketState"
    status = 409
    default_message = "The request is not valid with the current state of the bucket."


class InvalidDigest(S3Error):
    code = "InvalidDigest"
    status = 400
    default_message = "The Content-MD5 you specified is not valid."


class InvalidPart(S3Error):
    code = "InvalidPart"
    status = 400
    default_message = (
        "One or more of the specified parts could not be found. The part may not have been "
        "uploaded, or the specified entity tag may not match the part's entity tag."
    )


class InvalidPartOrder(S3Error):
    code = "InvalidPartOrder"
    status = 400
    default_message = "The list of parts was not in ascending order."


class InvalidPartNumber(S3Error):
    code = "InvalidPartNumber"
    status = 416
    default_message = "The requested partnumber is not satisfiable"


class InvalidTag(S3Error):
    code = "InvalidTag"
    status = 400
    default_message = "The tag provided was not a valid tag."


class InvalidObjectState(S3Error):
    code = "InvalidObjectState"
    status = 403
    default_message = "The operation is not valid for the object's storage class."


class InvalidRange(S3Error):
    code = "InvalidRange"
    status = 416
    default_message = "The requested range is not satisfiable"


class InvalidRequest(S3Error):
    code = "InvalidRequest"
    status = 400
    default_message = "Invalid Request"


class KeyTooLongError(S3Error):
    code = "KeyTooLongError"
    status = 400
    default_message = "Your key is too long"


class MalformedACLError(S3Error):
    code = "MalformedACLError"
    status = 400
    default_message = (
        "The XML you provided was not well-formed or did not validate against our published schema."
    )


class MalformedXML(S3Error):
    code = "MalformedXML"
    status = 400
    default_message = "The XML you provided was not well-formed or did not validate."


class MethodNotAllowed(S3Error):
    code = "MethodNotAllowed"
    status = 405
    default_message = "The specified method is not allowed against this resource."


class MissingContentLength(S3Error):
    code = "MissingContentLength"
    status = 411
    default_message = "You must provide the Content-Length HTTP header."


class MissingSecurityHeader(S3Error):
    code = "MissingSecurityHeader"
    status = 400
    default_message = "Your request is missing a required header."


class NoSuchBucket(S3Error):
    code = "NoSuchBucket"
    status = 404
    default_message = "The specified bucket does not exist"


class NoSuchKey(S3Error):
    code = "NoSuchKey"
    status = 404
    default_message = "The specified key does not exist."


class NoSuchTagSet(S3Error):
    code = "NoSuchTagSet"
    status = 404
    default_message = "The TagSet does not exist"


class NoSuchVersion(S3Error):
    code = "NoSuchVersion"
    status = 404
    default_message = "The specified version does not exist."


class NoSuchUpload(S3Error):
    code = "NoSuchUpload"
    status = 404
    default_message = (
        "The specified upload does not exist. The upload ID may be invalid, or the upload may "
        "have been aborted or completed."
    )


class NotImplementedErr(S3Error):
    code = "NotImplemented"
    status = 501
    default_message = "A header you provided implies functionality that is not implemented."


class PreconditionFailed(S3Error):
    code = "PreconditionFailed"
    status = 412
    default_message = "At least one of the pre-conditions you specified did not hold"


class RequestTimeTooSkewed(S3Error):
    code = "RequestTimeTooSkewed"
    status = 403
    default_message = "The difference between the request time and the server's time is too large."


class ServiceUnavailable(S3Error):
    code = "ServiceUnavailable"
    status = 503
    default_message = "Please reduce your request rate."


class SignatureDoesNotMatch(S3Error):
    code = "SignatureDoesNotMatch"
    status = 403
    default_message = (
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method."
    )


class XAmzContentSHA256Mismatch(S3Error):
    code = "XAmzContentSHA256Mismatch"
    status = 400
    default_message = "The provided 'x-amz-content-sha256' header does not match what was computed."


# The one table from domain errors to S3 errors. Order matters: the first
# matching class wins, so subclasses come before their bases.
_DOMAIN_TABLE: list[tuple[type[dom.VersioningError], type[S3Error]]] = [
    (dom.RepoNotFound, NoSuchBucket),
    (dom.BranchNotFound, NoSuchBucket),
    (dom.CommitNotFound, NoSuchBucket),
    (dom.ObjectNotFound, NoSuchKey),
    (dom.UploadNotFound, NoSuchUpload),
    # Refs reach S3 only as bucket names (repo.branch, repo.<commit>).
    (dom.RefNotFound, NoSuchBucket),
    # Tags and open commits reach S3 as bucket names too (repo.<open commit>).
    (dom.TagNotFound, NoSuchBucket),
    (dom.OpenCommitNotFound, NoSuchBucket),
    (dom.InvalidRef, InvalidBucketName),
    (dom.InvalidCursor, InvalidArgument),
    (dom.AmbiguousRef, InvalidBucketName),
    (dom.RepoExists, BucketAlreadyOwnedByYou),
    (dom.BranchExists, BucketAlreadyOwnedByYou),
    (dom.TagExists, BucketAlreadyOwnedByYou),
    (dom.InvalidName, InvalidBucketName),
    (dom.BranchNotEmpty, BucketNotEmpty),
    (dom.ReadOnlyRef, AccessDenied),
    (dom.PreconditionFailed, PreconditionFailed),
    # A body purged from the repo (loxo purge): permanent, and a code S3
    # clients know (an archived object) and do not retry.
    (dom.ContentPurged, InvalidObjectState),
    (dom.TrashNotFound, NoSuchBucket),
    # Pipelines are control-API only; a pipeline is named like its output bucket.
    (dom.PipelineNotFound, NoSuchBucket),
    (dom.PipelineExists, BucketAlreadyOwnedByYou),
    (dom.InvalidSpec, InvalidRequest),
    (dom.UnmergedCommits, BucketNotEmpty),
    (dom.ConcurrentUpdate, ServiceUnavailable),
    # Control-API outcomes no S3 action produces; retryable if one ever did.
    (dom.Busy, ServiceUnavailable),
    (dom.HeadMoved, ServiceUnavailable),
    (dom.MergeConflict, ServiceUnavailable),
    # Jobs and datums are control-API only (no S3 action reaches them).
    (dom.JobNotFound, InvalidRequest),
    (dom.DatumNotFound, InvalidRequest),
    (dom.JobActive, ServiceUnavailable),
    (dom.LeaseLost, ServiceUnavailable),
    (dom.DatumNotRestartable, InvalidRequest),
    (dom.JobEnded, InvalidRequest),
    # Retryable: a retry re-reads the source, which is then found or not.
    (dom.ContentGone, ServiceUnavailable),
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


# The one table from signing errors (AWS's authentication codes) to S3 errors:
# same code, and the status S3 answers with.
_SIGNING_TABLE: dict[type[signing.SigningError], type[S3Error]] = {
    signing.AccessDenied: AccessDenied,
    signing.AuthorizationHeaderMalformed: AuthorizationHeaderMalformed,
    signing.AuthorizationQueryParametersError: AuthorizationQueryParametersError,
    signing.InvalidAccessKeyId: InvalidAccessKeyId,
    signing.InvalidArgument: InvalidArgument,
    signing.InvalidRequest: InvalidRequest,
    signing.RequestTimeTooSkewed: RequestTimeTooSkewed,
    signing.SignatureDoesNotMatch: SignatureDoesNotMatch,
}


def from_signing(exc: signing.SigningError) -> S3Error:
    """The S3 error for a signing error: its message and extra fields, S3's status."""
    for cls in type(exc).__mro__:
        s3_cls = _SIGNING_TABLE.get(cls)
        if s3_cls is not None:
            return s3_cls(exc.message, **exc.extra)
    return AccessDenied(exc.message, **exc.extra)
