"""Multipart seams leave no garbage: measured on disk, through a real server.

Each part is chunked on its own and Complete re-cuts the seams between parts
(content.rejoin), so the object is chunked exactly as a single PUT. The
chunks a part's own chunking makes near its edges are kept as the upload's
fragments, not chunks, until Complete (versioning/uploads.py). These tests
count the chunk files on disk with no gc run: a multipart upload must store
about its size, an edited re-upload only about the edit, and no fragment may
outlive its upload.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from tests.conftest import LoxoServer
from versioning.chunker import StreamChunker, chunk_id

MiB = 1024 * 1024
SIZE = 64 * MiB
PART = 8 * MiB  # boto3's default part size


def stored(server: LoxoServer) -> tuple[int, int]:
    """(chunk bytes, fragment bytes) on disk, temp files excluded."""
    assert server.data_dir is not None
    root = server.data_dir / "chunks"
    chunks = fragments = 0
    for p in root.rglob("*"):
        if not p.is_file() or p.name.startswith("."):
            continue
        if p.relative_to(root).parts[0] == "fragments":
            fragments += p.stat().st_size
        else:
            chunks += p.stat().st_size
    return chunks, fragments


def new_bytes(old: bytes, new: bytes) -> int:
    """Bytes of the chunks of `new` that `old` lacks, chunked whole."""

    def chunks(data: bytes) -> dict[bytes, int]:
        chunker = StreamChunker()
        pieces = chunker.feed(data) + chunker.finish()
        return {chunk_id(c): len(c) for c in pieces}

    before = chunks(old)
    return sum(size for cid, size in chunks(new).items() if cid not in before)


def fragment_dirs(server: LoxoServer) -> list[Path]:
    assert server.data_dir is not None
    root = server.data_dir / "chunks" / "fragments"
    return sorted(root.iterdir()) if root.exists() else []


@pytest.fixture
def srv(make_server: Callable[..., LoxoServer]) -> LoxoServer:
    # No background gc: whatever is on disk is what the writes left.
    return make_server(extra_args=["--gc-interval-hours", "0"])


def upload(s3: Any, path: Path, bucket: str, key: str) -> None:
    config = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=4)
    s3.upload_file(str(path), bucket, key, Config=config)


def test_multipart_upload_stores_its_size_and_an_insert_only_the_insert(
    srv: LoxoServer, tmp_path: Path
) -> None:
    s3 = srv.client()
    s3.create_bucket(Bucket="seams")
    data = random.Random(6).randbytes(SIZE)
    original = tmp_path / "original.bin"
    original.write_bytes(data)
    base, _ = stored(srv)

    upload(s3, original, "seams", "original.bin")
    after_first, leftover = stored(srv)
    first = after_first - base
    assert leftover == 0 and fragment_dirs(srv) == []
    # Without gc: the chunks hold the body once (plus a byte of header per chunk).
    assert first <= 1.05 * SIZE, f"{first / MiB:.1f} MiB stored for {SIZE // MiB} MiB"
    got = s3.get_object(Bucket="seams", Key="original.bin")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()

    # The same bytes in one PUT are chunked the same: nothing new is stored.
    s3.put_object(Bucket="seams", Key="single.bin", Body=data)
    after_put, _ = stored(srv)
    assert after_put - after_first <= 64 * 1024

    # 1 MiB inserted near the start, uploaded in 8 MiB parts again: every
    # later part's bytes shift, yet only about the insert is new (P6).
    edited = data[: 3 * MiB] + random.Random(7).randbytes(MiB) + data[3 * MiB :]
    changed = tmp_path / "edited.bin"
    changed.write_bytes(edited)
    upload(s3, changed, "seams", "edited.bin")
    after_edit, leftover = stored(srv)
    assert leftover == 0 and fragment_dirs(srv) == []
    growth = after_edit - after_put
    # What chunking the edited body anew costs at this insert point, a property
    # of FastCDC (1 MiB + 2 to 5 average chunks): the upload adds nothing to it
    # (plus the stored form's header byte per chunk).
    intrinsic = new_bytes(data, edited)
    print(
        f"first upload {first / MiB:.2f} MiB of {SIZE // MiB} MiB; insert growth "
        f"{growth / MiB:.2f} MiB, a single PUT's chunks {intrinsic / MiB:.2f} MiB"
    )
    assert growth <= intrinsic + 16 * 1024, f"the insert grew the store by {growth / MiB:.1f} MiB"
    assert growth <= 6 * MiB
    got = s3.get_object(Bucket="seams", Key="edited.bin")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(edited).digest()

    # And as a single PUT: the same chunks again.
    s3.put_object(Bucket="seams", Key="edited-single.bin", Body=edited)
    after_single, _ = stored(srv)
    assert after_single - after_edit <= 64 * 1024


def test_fragments_live_until_the_upload_ends(srv: LoxoServer) -> None:
    s3 = srv.client()
    s3.create_bucket(Bucket="frag")
    rng = random.Random(8)
    parts = [rng.randbytes(PART) for _ in range(3)]

    # Aborted: its fragments go with it.
    upload_id = s3.create_multipart_upload(Bucket="frag", Key="a.bin")["UploadId"]
    for number, body in enumerate(parts[:2], start=1):
        s3.upload_part(Bucket="frag", Key="a.bin", UploadId=upload_id, PartNumber=number, Body=body)
    assert [d.name for d in fragment_dirs(srv)] == [upload_id]
    assert stored(srv)[1] > 0
    s3.abort_multipart_upload(Bucket="frag", Key="a.bin", UploadId=upload_id)
    assert fragment_dirs(srv) == [] and stored(srv)[1] == 0

    # An open upload's fragments survive gc; a closed one's leftovers (as a
    # crash between Complete and their deletion would leave) do not.
    upload_id = s3.create_multipart_upload(Bucket="frag", Key="b.bin")["UploadId"]
    done = []
    for number, body in enumerate(parts, start=1):
        resp = s3.upload_part(
            Bucket="frag", Key="b.bin", UploadId=upload_id, PartNumber=number, Body=body
        )
        done.append({"PartNumber": number, "ETag": resp["ETag"]})
    # fsck reads an open upload's edge chunks from its fragments.
    checked = srv.maintenance("fsck")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert srv.data_dir is not None
    orphan = srv.data_dir / "chunks" / "fragments" / ("0" * 46)
    orphan.mkdir()
    (orphan / ("ab" * 32)).write_bytes(b"\x00leftover")
    result = srv.maintenance("gc", "--json", "--grace-minutes", "0")
    assert result.returncode == 0, result.stderr
    assert [d.name for d in fragment_dirs(srv)] == [upload_id]

    s3.complete_multipart_upload(
        Bucket="frag", Key="b.bin", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    assert fragment_dirs(srv) == []
    got = s3.get_object(Bucket="frag", Key="b.bin")["Body"].read()
    assert got == b"".join(parts)
    # gc finds nothing the upload left behind: every chunk is the object's.
    before, _ = stored(srv)
    result = srv.maintenance("gc", "--json", "--grace-minutes", "0")
    assert result.returncode == 0, result.stderr
    assert stored(srv)[0] == before
