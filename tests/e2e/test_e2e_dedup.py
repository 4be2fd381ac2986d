"""Content-addressed storage: the same bytes are stored once, across keys and repos."""

from __future__ import annotations

import os
from typing import Any

MiB = 1024 * 1024


def test_identical_bodies_share_chunks_across_repos(server: Any, s3: Any, new_bucket: Any) -> None:
    first, second = new_bucket("dedup"), new_bucket("dedup")
    body = os.urandom(3 * MiB)

    before = len(server.chunk_files())
    s3.put_object(Bucket=first, Key="one", Body=body)
    after_first = len(server.chunk_files())
    assert after_first > before, "the first upload stored no chunk file"

    s3.put_object(Bucket=second, Key="two", Body=body)
    s3.put_object(Bucket=first, Key="copy-in-same-repo", Body=body)
    assert len(server.chunk_files()) == after_first, "identical content was stored again"

    for bucket, key in ((first, "one"), (second, "two"), (first, "copy-in-same-repo")):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body


def test_shifted_content_reuses_most_chunks(server: Any, s3: Any, new_bucket: Any) -> None:
    """Content-defined chunking: an insertion near the start leaves later chunks shared."""
    bucket = new_bucket("dedup")
    body = os.urandom(8 * MiB)
    s3.put_object(Bucket=bucket, Key="v1", Body=body)
    stored_first = len(server.chunk_files())
    edited = body[:1000] + b"inserted bytes" + body[1000:]
    s3.put_object(Bucket=bucket, Key="v2", Body=edited)
    added = len(server.chunk_files()) - stored_first
    assert 0 < added <= 3, f"an edit near the start re-stored {added} chunks"
    assert s3.get_object(Bucket=bucket, Key="v2")["Body"].read() == edited


def test_multipart_uploads_dedup_like_single_puts(
    server: Any, s3: Any, new_bucket: Any, tmp_path: Any
) -> None:
    """Parts are chunked one by one, then their seams re-cut at Complete: a
    multipart object has exactly the chunks a single PUT of its bytes has,
    so an insert that shifts every later part costs what it costs one PUT."""
    from boto3.s3.transfer import TransferConfig

    bucket = new_bucket("dedup")
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    body = os.urandom(30 * MiB)
    edited = body[: 12 * MiB] + os.urandom(MiB) + body[12 * MiB :]
    for name, data in (("v1", body), ("v2", edited)):
        path = tmp_path / name
        path.write_bytes(data)
        s3.upload_file(str(path), bucket, f"multipart-{name}", Config=config)
    stored = len(server.chunk_files())
    # The same bytes in single PUTs: every chunk is already there.
    s3.put_object(Bucket=bucket, Key="single-v1", Body=body)
    s3.put_object(Bucket=bucket, Key="single-v2", Body=edited)
    assert len(server.chunk_files()) == stored, "multipart chunks differ from a single PUT's"
    got = s3.get_object(Bucket=bucket, Key="multipart-v2")["Body"].read()
    assert got == edited
