"""s3fs (fsspec over aiobotocore) and pandas on top of it, against loxo over HTTP
and HTTPS: DataFrame to_csv / read_csv / to_parquet / read_parquet on s3:// URLs
(also a partitioned Parquet directory), and the filesystem itself: put and get
of a tree, find, ranged reads, a streamed multipart write, copy, move, rm.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

MiB = 1024 * 1024


def storage_options(server: Any) -> dict[str, Any]:
    client_kwargs: dict[str, Any] = {"endpoint_url": server.endpoint, "region_name": "us-east-1"}
    if server.ca_bundle is not None:
        client_kwargs["verify"] = str(server.ca_bundle)
    return {
        "key": server.access_key,
        "secret": server.secret_key,
        "client_kwargs": client_kwargs,
        "config_kwargs": {"s3": {"addressing_style": "path"}},
        "skip_instance_cache": True,
    }


@pytest.fixture
def fs_for(require_module: Callable[[str], Any]) -> Callable[[Any], Any]:
    s3fs = require_module("s3fs")

    def make(server: Any) -> Any:
        return s3fs.S3FileSystem(**storage_options(server))

    return make


def sample_frame(pd: Any, rows: int = 500) -> Any:
    import numpy as np

    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype="int64"),
            "group": [f"g{i % 3}" for i in range(rows)],
            "value": rng.normal(size=rows),
            "label": [f'caf\u00e9 {i}, "quoted"' if i % 7 else "" for i in range(rows)],
            "when": pd.date_range("2026-01-01", periods=rows, freq="h"),
        }
    )


def test_pandas_csv_and_parquet(
    loxo: Any,
    require_module: Callable[[str], Any],
    make_bucket: Callable[..., str],
    bucket_objects: Callable[..., dict[str, bytes]],
) -> None:
    pd = require_module("pandas")
    require_module("s3fs")
    require_module("pyarrow")
    bucket = make_bucket(loxo, "pandas")
    opts = storage_options(loxo)
    df = sample_frame(pd)

    df.to_csv(f"s3://{bucket}/csv/frame.csv", index=False, storage_options=opts)
    stored = bucket_objects(loxo, bucket, "csv/")["csv/frame.csv"]
    assert stored == df.to_csv(index=False).encode()
    back = pd.read_csv(
        f"s3://{bucket}/csv/frame.csv", storage_options=opts, parse_dates=["when"],
        keep_default_na=False,
    )  # fmt: skip
    pd.testing.assert_frame_equal(back, df, check_dtype=False)

    df.to_parquet(f"s3://{bucket}/pq/frame.parquet", index=False, storage_options=opts)
    back = pd.read_parquet(f"s3://{bucket}/pq/frame.parquet", storage_options=opts)
    pd.testing.assert_frame_equal(back, df)

    # a directory of files, one per partition value
    df.to_parquet(
        f"s3://{bucket}/parts", index=False, partition_cols=["group"], storage_options=opts
    )
    keys = sorted(bucket_objects(loxo, bucket, "parts/"))
    assert {k.split("/")[1] for k in keys} == {"group=g0", "group=g1", "group=g2"}, keys
    back = pd.read_parquet(f"s3://{bucket}/parts", storage_options=opts)
    back["group"] = back["group"].astype(str)
    back = back[df.columns].sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(back, df)


def test_s3fs_filesystem(
    loxo: Any,
    fs_for: Callable[[Any], Any],
    make_bucket: Callable[..., str],
    make_tree: Callable[..., dict[str, bytes]],
    read_tree: Callable[[Path], dict[str, bytes]],
    same_tree: Callable[..., None],
    bucket_objects: Callable[..., dict[str, bytes]],
    tmp_path: Path,
) -> None:
    fs = fs_for(loxo)
    bucket = make_bucket(loxo, "s3fs")
    files = make_tree(tmp_path / "src")

    fs.put(str(tmp_path / "src") + "/", f"{bucket}/tree/", recursive=True)
    uploaded = bucket_objects(loxo, bucket, "tree/")
    same_tree({k.removeprefix("tree/"): v for k, v in uploaded.items()}, files)
    found = fs.find(f"{bucket}/tree/")
    assert sorted(p.removeprefix(f"{bucket}/tree/") for p in found) == sorted(files)
    assert fs.isdir(f"{bucket}/tree/docs") and fs.isfile(f"{bucket}/tree/top.txt")
    assert fs.size(f"{bucket}/tree/data/a/one.bin") == len(files["data/a/one.bin"])

    fs.get(f"{bucket}/tree/", str(tmp_path / "down") + "/", recursive=True)
    same_tree(read_tree(tmp_path / "down"), files)

    # ranged reads and seeks
    three = files["data/b/deep/three.bin"]
    assert (
        fs.cat_file(f"{bucket}/tree/data/b/deep/three.bin", start=1000, end=5000)
        == three[1000:5000]
    )
    with fs.open(f"{bucket}/tree/data/b/deep/three.bin", "rb", block_size=64 * 1024) as f:
        f.seek(len(three) - 100)
        assert f.read() == three[-100:]
        f.seek(10)
        assert f.read(10) == three[10:20]

    # a streamed write in 5 MiB blocks: a multipart upload
    big = b"".join(hashlib.sha512(str(i).encode()).digest() for i in range(12 * MiB // 64))
    with fs.open(f"{bucket}/stream/big.bin", "wb", block_size=5 * MiB) as f:
        for start in range(0, len(big), MiB):
            f.write(big[start : start + MiB])
    head = loxo.client().head_object(Bucket=bucket, Key="stream/big.bin")
    assert head["ETag"].strip('"').endswith("-3"), head
    assert fs.cat_file(f"{bucket}/stream/big.bin") == big
    buf = io.BytesIO()
    with fs.open(f"{bucket}/stream/big.bin", "rb") as f:
        buf.write(f.read())
    assert buf.getvalue() == big

    fs.rm(f"{bucket}/tree/", recursive=True)
    fs.invalidate_cache()
    assert not fs.exists(f"{bucket}/tree/top.txt")
    assert bucket_objects(loxo, bucket, "tree/") == {}
    assert fs.ls(f"{bucket}/", detail=False) == [f"{bucket}/stream"]


def test_s3fs_copy_and_move(
    server: Any,
    fs_for: Callable[[Any], Any],
    make_bucket: Callable[..., str],
    make_tree: Callable[..., dict[str, bytes]],
    same_tree: Callable[..., None],
    bucket_objects: Callable[..., dict[str, bytes]],
    tmp_path: Path,
) -> None:
    """fs.copy / fs.mv inside the server: CopyObject, then DeleteObject(s).

    (A recursive fs.mv of a prefix with no directory marker objects fails on
    AWS too: fsspec then copies the "directories" as keys, and raises.)"""
    fs = fs_for(server)
    bucket = make_bucket(server, "s3fsmv")
    files = make_tree(tmp_path / "src")
    fs.put(str(tmp_path / "src") + "/", f"{bucket}/a/", recursive=True)
    fs.copy(f"{bucket}/a/top.txt", f"{bucket}/copy.txt")
    assert bucket_objects(server, bucket, "copy.txt") == {"copy.txt": files["top.txt"]}
    fs.mv(f"{bucket}/copy.txt", f"{bucket}/moved.txt")
    assert bucket_objects(server, bucket, "copy.txt") == {}
    assert bucket_objects(server, bucket, "moved.txt") == {"moved.txt": files["top.txt"]}
    fs.copy(f"{bucket}/a/", f"{bucket}/b/", recursive=True)
    fs.rm(f"{bucket}/a/", recursive=True)
    fs.invalidate_cache()
    assert bucket_objects(server, bucket, "a/") == {}
    moved = bucket_objects(server, bucket, "b/")
    same_tree({k.removeprefix("b/"): v for k, v in moved.items()}, files)
