"""pyarrow.fs.S3FileSystem (the AWS C++ SDK) against loxo over HTTP and HTTPS:
a hive-partitioned multi-file Parquet dataset written with
pyarrow.dataset.write_dataset and read back (whole, filtered, one file), plus
streams: a multipart output stream, ranged input, directory listing, deletes.

pyarrow sends multipart parts aws-chunked with a CRC64NVME trailer even over
plain HTTP, HEADs `$extremelyunlikelytoexist$`-style probes and creates `dir/`
marker objects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

MiB = 1024 * 1024


def s3_filesystem(server: Any) -> Any:
    from pyarrow import fs

    options: dict[str, Any] = {}
    if server.ca_bundle is not None:
        options["tls_ca_file_path"] = str(server.ca_bundle)
    return fs.S3FileSystem(
        access_key=server.access_key,
        secret_key=server.secret_key,
        region="us-east-1",
        scheme=server.scheme,
        endpoint_override=f"127.0.0.1:{server.port}",
        connect_timeout=10,
        request_timeout=60,
        **options,
    )


def sample_table(pa: Any, rows: int = 3000) -> Any:
    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "year": pa.array([2020 + i % 3 for i in range(rows)], pa.int32()),
            "kind": pa.array(["a" if i % 2 else "b" for i in range(rows)]),
            "value": pa.array([i * 0.5 for i in range(rows)], pa.float64()),
            "text": pa.array([f"row {i} \u00e9" for i in range(rows)]),
        }
    )


def test_pyarrow_dataset_round_trip(
    loxo: Any,
    require_module: Callable[[str], Any],
    make_bucket: Callable[..., str],
    bucket_objects: Callable[..., dict[str, bytes]],
) -> None:
    pa = require_module("pyarrow")
    ds = require_module("pyarrow.dataset")
    pq = require_module("pyarrow.parquet")
    fs = s3_filesystem(loxo)
    bucket = make_bucket(loxo, "arrow")
    table = sample_table(pa)

    ds.write_dataset(
        table,
        f"{bucket}/ds",
        filesystem=fs,
        format="parquet",
        partitioning=ds.partitioning(
            pa.schema([("year", pa.int32()), ("kind", pa.string())]), flavor="hive"
        ),
        max_rows_per_file=400,
        max_rows_per_group=400,
        existing_data_behavior="overwrite_or_ignore",
    )
    stored = [k for k in bucket_objects(loxo, bucket, "ds/") if k.endswith(".parquet")]
    # 6 partitions of 500 rows each, 400 rows a file: 12 files
    assert len(stored) == 12, stored
    assert all(k.split("/")[1].startswith("year=") for k in stored), stored

    dataset = ds.dataset(f"{bucket}/ds", filesystem=fs, format="parquet", partitioning="hive")
    back = dataset.to_table().select(table.column_names).sort_by("id")
    back = back.cast(table.schema)
    assert back.equals(table)

    filtered = dataset.to_table(filter=(ds.field("year") == 2021) & (ds.field("kind") == "a"))
    expected = [i for i in range(3000) if i % 3 == 1 and i % 2 == 1]
    assert sorted(filtered.column("id").to_pylist()) == expected

    # one Parquet file through the filesystem, read by pq with a column subset
    pq.write_table(table, f"{bucket}/single/t.parquet", filesystem=fs)
    cols = pq.read_table(f"{bucket}/single/t.parquet", filesystem=fs, columns=["id", "text"])
    assert cols.equals(table.select(["id", "text"]))

    # listing through the filesystem
    from pyarrow.fs import FileSelector, FileType

    infos = fs.get_file_info(FileSelector(f"{bucket}/ds", recursive=True))
    files = sorted(i.path for i in infos if i.type == FileType.File)
    assert files == sorted(f"{bucket}/{k}" for k in stored)
    dirs = {i.path for i in infos if i.type == FileType.Directory}
    assert f"{bucket}/ds/year=2020" in dirs and f"{bucket}/ds/year=2020/kind=a" in dirs, dirs

    fs.delete_dir(f"{bucket}/ds")
    assert fs.get_file_info(f"{bucket}/ds").type == FileType.NotFound
    assert not [k for k in bucket_objects(loxo, bucket) if k.startswith("ds/")]


def test_pyarrow_streams(
    loxo: Any,
    require_module: Callable[[str], Any],
    make_bucket: Callable[..., str],
    bucket_objects: Callable[..., dict[str, bytes]],
) -> None:
    require_module("pyarrow")
    from pyarrow.fs import FileType

    fs = s3_filesystem(loxo)
    bucket = make_bucket(loxo, "arrowio")

    # 12 MiB written 1 MiB at a time: a multipart upload (aws-chunked parts)
    big = b"".join(hashlib.sha512(str(i).encode()).digest() for i in range(12 * MiB // 64))
    with fs.open_output_stream(f"{bucket}/big/blob.bin") as out:
        for start in range(0, len(big), MiB):
            out.write(big[start : start + MiB])
    assert bucket_objects(loxo, bucket, "big/") == {"big/blob.bin": big}
    head = loxo.client().head_object(Bucket=bucket, Key="big/blob.bin")
    assert "-" in head["ETag"], head  # multipart

    # a small object: one PUT
    with fs.open_output_stream(f"{bucket}/small.txt") as out:
        out.write(b"small and simple\n")
    with fs.open_input_stream(f"{bucket}/small.txt") as f:
        assert f.read() == b"small and simple\n"

    # random access
    with fs.open_input_file(f"{bucket}/big/blob.bin") as f:
        assert f.size() == len(big)
        f.seek(5 * MiB - 10)
        assert f.read(20) == big[5 * MiB - 10 : 5 * MiB + 10]
        assert f.read_at(100, len(big) - 100) == big[-100:]

    info = fs.get_file_info(f"{bucket}/big/blob.bin")
    assert info.type == FileType.File and info.size == len(big)
    assert fs.get_file_info(f"{bucket}/big").type == FileType.Directory
    assert fs.get_file_info(f"{bucket}/nothing-here").type == FileType.NotFound

    fs.create_dir(f"{bucket}/made/sub")
    assert fs.get_file_info(f"{bucket}/made/sub").type == FileType.Directory

    fs.delete_file(f"{bucket}/small.txt")
    assert fs.get_file_info(f"{bucket}/small.txt").type == FileType.NotFound
    fs.delete_dir_contents(f"{bucket}/big")
    assert "big/blob.bin" not in bucket_objects(loxo, bucket)
