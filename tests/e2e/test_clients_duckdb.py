"""DuckDB's httpfs extension against loxo over HTTP and HTTPS: COPY ... TO
s3:// (Parquet and CSV, also PARTITION_BY), then read_parquet / read_csv over
globs and hive partitions, and a ranged read of one column.

httpfs cannot be installed offline (`INSTALL httpfs` downloads it): the PyPI
package `duckdb-ext-httpfs` ships the extension for the pinned duckdb, and
`extension_directory` points at it. DuckDB writes every S3 file as a multipart
upload, and sends a signed payload hash and no checksums.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any


def connect(server: Any, require_module: Callable[[str], Any]) -> Any:
    duckdb = require_module("duckdb")
    require_module("duckdb_ext")
    spec = importlib.util.find_spec("duckdb_ext")
    assert spec is not None and spec.submodule_search_locations
    ext_dir = Path(next(iter(spec.submodule_search_locations))) / "extensions"
    assert any(ext_dir.rglob("httpfs.duckdb_extension")), f"no httpfs extension in {ext_dir}"

    con = duckdb.connect()
    con.execute(f"SET extension_directory = '{ext_dir}'")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("LOAD httpfs")
    https = server.ca_bundle is not None
    if https:
        # httpfs does not verify server certificates unless told to
        con.execute("SET enable_server_cert_verification = true")
        con.execute(f"SET ca_cert_file = '{server.ca_bundle}'")
    con.execute(
        f"""CREATE SECRET loxo (
            TYPE s3,
            KEY_ID '{server.access_key}',
            SECRET '{server.secret_key}',
            REGION 'us-east-1',
            ENDPOINT '127.0.0.1:{server.port}',
            URL_STYLE 'path',
            USE_SSL {str(https).lower()}
        )"""
    )
    return con


def test_duckdb_copy_and_read(
    loxo: Any,
    require_module: Callable[[str], Any],
    make_bucket: Callable[..., str],
    bucket_objects: Callable[..., dict[str, bytes]],
) -> None:
    con = connect(loxo, require_module)
    bucket = make_bucket(loxo, "duck")
    rows = "SELECT i AS id, i % 5 AS grp, 'name ' || i AS name, i * 1.5 AS amount"

    for n in range(3):
        con.execute(
            f"COPY ({rows} FROM range({n * 10000}, {(n + 1) * 10000}) t(i)) "
            f"TO 's3://{bucket}/pq/part{n}.parquet' (FORMAT parquet)"
        )
    stored = bucket_objects(loxo, bucket, "pq/")
    assert sorted(stored) == [f"pq/part{n}.parquet" for n in range(3)]
    assert all(body[:4] == b"PAR1" and body[-4:] == b"PAR1" for body in stored.values())

    count, total, low, high = con.execute(
        f"SELECT count(*), sum(id), min(id), max(id) FROM read_parquet('s3://{bucket}/pq/*.parquet')"
    ).fetchone()
    assert (count, total, low, high) == (30000, sum(range(30000)), 0, 29999)
    files = con.execute(
        f"SELECT DISTINCT filename FROM read_parquet('s3://{bucket}/**/*.parquet', filename=true)"
        " ORDER BY 1"
    ).fetchall()
    assert [f for (f,) in files] == [f"s3://{bucket}/pq/part{n}.parquet" for n in range(3)]
    # a projection and a filter: DuckDB reads the footer, then column chunks by range
    (name,) = con.execute(
        f"SELECT name FROM 's3://{bucket}/pq/part1.parquet' WHERE id = 12345"
    ).fetchone()
    assert name == "name 12345"

    # a hive-partitioned write, read back with the partition column
    con.execute(
        f"COPY ({rows} FROM range(1000) t(i)) TO 's3://{bucket}/hive' "
        "(FORMAT parquet, PARTITION_BY (grp))"
    )
    keys = sorted(bucket_objects(loxo, bucket, "hive/"))
    assert {k.split("/")[1] for k in keys} == {f"grp={g}" for g in range(5)}, keys
    per_group = con.execute(
        f"SELECT grp, count(*), sum(id) FROM read_parquet('s3://{bucket}/hive/*/*.parquet', "
        "hive_partitioning=true) GROUP BY grp ORDER BY grp"
    ).fetchall()
    assert per_group == [(g, 200, sum(i for i in range(1000) if i % 5 == g)) for g in range(5)]

    # CSV out and in; the object is exactly what DuckDB wrote locally
    con.execute(
        f"COPY ({rows} FROM range(100) t(i)) TO 's3://{bucket}/csv/data.csv' "
        "(HEADER, DELIMITER ',')"
    )
    body = bucket_objects(loxo, bucket, "csv/")["csv/data.csv"]
    assert body.startswith(b"id,grp,name,amount\n0,0,name 0,0.0\n"), body[:100]
    assert body.count(b"\n") == 101
    back = con.execute(
        f"SELECT count(*), sum(amount) FROM read_csv('s3://{bucket}/csv/*.csv', header=true)"
    ).fetchone()
    assert back == (100, sum(i * 1.5 for i in range(100)))
    con.close()
