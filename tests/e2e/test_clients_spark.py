"""Apache Spark's S3A connector (hadoop-aws 3.3.1, AWS Java SDK v1) against loxo
over HTTP and HTTPS: CSV and Parquet written and read back, then the same path
overwritten and appended to; plus reading objects another client wrote.

pyspark (Hadoop 3.3.4 inside) comes from the test extra; hadoop-aws and the AWS
SDK bundle are not on PyPI as jars, so a session fixture takes them from the
source package sagemaker-pyspark==1.4.5 once into ~/.cache/loxo-test-jars.
One SparkSession serves both servers: the HTTPS one through per-bucket S3A
settings (fs.s3a.bucket.NAME.*) and a JVM trust store holding the test CA.

S3A sends STREAMING-AWS4-HMAC-SHA256-PAYLOAD bodies with Content-MD5, probes
with HEAD and LIST (max-keys 2), creates and deletes `dir/` markers, and
commits a job by renaming: CopyObject + DeleteObjects.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

SAGEMAKER = "sagemaker-pyspark==1.4.5"
JARS = ("hadoop-aws-3.3.1.jar", "aws-java-sdk-bundle-1.11.901.jar")


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "loxo-test-jars"


@pytest.fixture(scope="session")
def s3a_jars(fail_or_skip: Callable[[str], None]) -> list[Path]:
    """hadoop-aws and aws-java-sdk-bundle, extracted once from sagemaker-pyspark's sdist."""
    cache = _cache_dir()
    paths = [cache / name for name in JARS]
    if all(p.is_file() and p.stat().st_size > 0 for p in paths):
        return paths
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="loxo-sagemaker-") as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", "--dest", tmp, SAGEMAKER],
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        sdists = list(Path(tmp).glob("sagemaker_pyspark-*.tar.gz"))
        if proc.returncode != 0 or not sdists:
            fail_or_skip(f"could not download {SAGEMAKER} for the S3A jars:\n{proc.stderr[-2000:]}")
        with tarfile.open(sdists[0]) as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            for name in JARS:
                if name not in members:
                    fail_or_skip(f"{name} is not in {sdists[0].name}")
                source = tar.extractfile(members[name])
                assert source is not None
                partial = cache / (name + ".part")
                partial.write_bytes(source.read())
                partial.replace(cache / name)
    return paths


@pytest.fixture(scope="module")
def spark(
    s3a_jars: list[Path],
    server: Any,
    https_server: Any,
    require_binary: Callable[[str], str],
    require_module: Callable[[str], Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Any, dict[str, tuple[Any, str]]]]:
    """(SparkSession, {"http": (server, bucket), "https": (https_server, bucket)})."""
    require_binary("java")
    keytool = require_binary("keytool")
    require_module("pyspark")
    from pyspark.sql import SparkSession

    work = tmp_path_factory.mktemp("spark")
    truststore = work / "truststore.p12"
    subprocess.run(
        [keytool, "-importcert", "-noprompt", "-alias", "loxo-test-ca",
         "-file", str(https_server.ca_bundle), "-keystore", str(truststore),
         "-storetype", "PKCS12", "-storepass", "changeit"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip

    buckets = {}
    for label, srv in (("http", server), ("https", https_server)):
        name = f"spark-{label}-{uuid.uuid4().hex[:10]}"
        srv.client().create_bucket(Bucket=name)
        buckets[label] = (srv, name)

    saved_local_ip = os.environ.get("SPARK_LOCAL_IP")
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"  # read when the JVM starts
    java_opts = (
        f"-Djavax.net.ssl.trustStore={truststore} -Djavax.net.ssl.trustStorePassword=changeit "
        "-Djavax.net.ssl.trustStoreType=PKCS12"
    )
    s3a = "spark.hadoop.fs.s3a."
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("loxo-s3a")
        .config("spark.jars", ",".join(str(p) for p in s3a_jars))
        .config("spark.driver.extraJavaOptions", java_opts)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.local.dir", str(work / "local"))
        .config(s3a + "impl", "org.apache.hadoop.fs.s3a.S3AFileSystem")
        .config(s3a + "aws.credentials.provider",
                "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider")
        .config(s3a + "access.key", server.access_key)
        .config(s3a + "secret.key", server.secret_key)
        .config(s3a + "endpoint", server.endpoint)
        .config(s3a + "path.style.access", "true")
        .config(s3a + "connection.ssl.enabled", "false")
        .config(s3a + "attempts.maximum", "2")
        .config(s3a + "retry.limit", "2")
        .config(s3a + "connection.establish.timeout", "10000")
        .config(s3a + "multipart.size", "5M")
        .config(s3a + "multipart.threshold", "5M")
        .config(s3a + "buffer.dir", str(work / "s3a-buffer"))
    )  # fmt: skip
    tls_bucket = buckets["https"][1]
    per_bucket = f"{s3a}bucket.{tls_bucket}."
    builder = (
        builder.config(per_bucket + "endpoint", https_server.endpoint)
        .config(per_bucket + "connection.ssl.enabled", "true")
        .config(per_bucket + "access.key", https_server.access_key)
        .config(per_bucket + "secret.key", https_server.secret_key)
    )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session, buckets
    finally:
        session.stop()
        if saved_local_ip is None:
            os.environ.pop("SPARK_LOCAL_IP", None)
        else:
            os.environ["SPARK_LOCAL_IP"] = saved_local_ip


@pytest.fixture(params=["http", "https"])
def target(request: pytest.FixtureRequest, spark: Any) -> tuple[Any, Any, str]:
    """(SparkSession, server, bucket) for each scheme."""
    session, buckets = spark
    srv, bucket = buckets[request.param]
    return session, srv, bucket


def rows(session: Any, start: int, count: int) -> Any:
    from pyspark.sql import functions as F

    return (
        session.range(start, start + count, numPartitions=2)
        .withColumn("grp", (F.col("id") % 3).cast("int"))
        .withColumn("name", F.concat(F.lit("n\u00e9 "), F.col("id").cast("string")))
        .withColumn("amount", F.col("id") * F.lit(0.25))
    )


def as_set(df: Any) -> set[tuple[Any, ...]]:
    return {tuple(r) for r in df.select("id", "grp", "name", "amount").collect()}


def test_spark_reads_what_other_clients_wrote(
    target: tuple[Any, Any, str], require_module: Callable[[str], Any]
) -> None:
    """Read only: CSV and Parquet objects PUT with boto3 (no rename involved)."""
    session, srv, bucket = target
    pa = require_module("pyarrow")
    pq = require_module("pyarrow.parquet")
    import io

    s3 = srv.client()
    lines = ["id,grp,name"] + [f"{i},{i % 3},row {i}" for i in range(500)]
    s3.put_object(Bucket=bucket, Key="ext/csv/a.csv", Body="\n".join(lines[:251]) + "\n")
    s3.put_object(
        Bucket=bucket, Key="ext/csv/b.csv", Body="\n".join([lines[0], *lines[251:]]) + "\n"
    )
    table = pa.table({"id": list(range(1000)), "name": [f"p{i}" for i in range(1000)]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    s3.put_object(Bucket=bucket, Key="ext/pq/t.parquet", Body=buf.getvalue())

    csv = session.read.option("header", "true").option("inferSchema", "true")
    df = csv.csv(f"s3a://{bucket}/ext/csv/")
    assert df.count() == 500
    assert sorted(r.id for r in df.select("id").collect()) == list(range(500))
    back = session.read.parquet(f"s3a://{bucket}/ext/pq/t.parquet")
    assert sorted((r.id, r.name) for r in back.collect()) == [(i, f"p{i}") for i in range(1000)]


def test_spark_write_overwrite_append(target: tuple[Any, Any, str]) -> None:
    """Writes commit by rename (CopyObject + DeleteObjects): CSV, Parquet,
    overwrite, append, and one file large enough for a multipart upload."""
    session, srv, bucket = target

    first = rows(session, 0, 1000)
    first.write.mode("overwrite").option("header", "true").csv(f"s3a://{bucket}/out/csv")
    back = session.read.option("header", "true").schema(first.schema).csv(f"s3a://{bucket}/out/csv")
    assert as_set(back) == as_set(first)

    path = f"s3a://{bucket}/out/pq"
    first.write.mode("overwrite").parquet(path)
    assert as_set(session.read.parquet(path)) == as_set(first)

    second = rows(session, 5000, 300)
    second.write.mode("overwrite").parquet(path)
    assert as_set(session.read.parquet(path)) == as_set(second)

    third = rows(session, 9000, 200)
    third.write.mode("append").parquet(path)
    assert as_set(session.read.parquet(path)) == as_set(second) | as_set(third)

    keys = [o["Key"] for o in srv.client().list_objects_v2(Bucket=bucket, Prefix="out/pq/")
            .get("Contents", [])]  # fmt: skip
    assert "out/pq/_SUCCESS" in keys, keys
    assert not [k for k in keys if "_temporary" in k], keys

    # one ~7 MiB CSV file: S3A uploads it in 5 MiB parts
    from pyspark.sql import functions as F

    big = session.range(0, 120_000, numPartitions=1).withColumn(
        "pad", F.sha2(F.col("id").cast("string"), 256)
    )
    big.coalesce(1).write.mode("overwrite").csv(f"s3a://{bucket}/out/big")
    objects = srv.client().list_objects_v2(Bucket=bucket, Prefix="out/big/part-")["Contents"]
    assert len(objects) == 1 and objects[0]["Size"] > 5 * 1024 * 1024, objects
    assert "-" in objects[0]["ETag"], objects  # multipart
    back = session.read.schema("id LONG, pad STRING").csv(f"s3a://{bucket}/out/big")
    assert back.count() == 120_000
    assert back.filter(F.col("pad") != F.sha2(F.col("id").cast("string"), 256)).count() == 0
