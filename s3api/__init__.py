"""s3api: the S3 protocol. Requests in, S3 XML and headers out.

The protocol ends here: nothing below this package knows about HTTP or S3.
"""
