"""Request signing: who signed an HTTP request with an AWS access key, and whether it holds.

AWS Signature Version 4 (`sigv4`, header and presigned URLs, plus the chunk
and trailer signatures of aws-chunked bodies) and Signature Version 2
(`sigv2`, header and presigned URLs), as pure functions over a request's
method, path, query and headers. Failures are `errors.SigningError`s in AWS's
own authentication codes (shared by every AWS service); each protocol maps
them to its own error documents (s3api.errors.from_signing, the control
API's JSON errors).

Both the S3 endpoint (s3api) and the control API (gateway.api) use this
package; it imports nothing of either, nor of the domain (versioning), nor of
any HTTP framework.
"""
