"""Pipelines whose user code talks S3 itself (s3 inputs, s3_out), run by real
workers against a real server:

- a Spark stage: pyspark with hadoop-aws reads CSV from `s3a://<input
  bucket>/` and writes CSV to `s3a://<LOXO_OUTPUT_BUCKET>/`, configured ONLY
  by what the worker writes into HADOOP_CONF_DIR / SPARK_CONF_DIR (the script
  sets no s3a option; it reports the endpoint Hadoop sees);
- a pandas/s3fs stage over a glob `/*` with s3_out: every output written
  through S3 is attributed to its datum (S3 metadata, provenance naming the
  right input file), and adding one file runs exactly one datum;
- the same stage with an `s3: true` input and glob `/*`: each datum's input
  bucket holds only that datum's files (the user code lists it through s3fs);
- every datum bucket (input and output) is a name Hadoop S3A can address:
  java.net.URI needs the last label of `<repo>.<hex>` to start with a letter.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import LoxoServer
from pipeline_helpers import (
    commit_files,
    control,
    datums,
    job_logs,
    job_of,
    keys,
    objects,
    python_cmd,
    wait_done,
    write_script,
)
from test_clients_spark import s3a_jars  # noqa: F401 - the session fixture

from gateway.client import Client

pytestmark = pytest.mark.slow

SPARK_JOB = """
    \"\"\"Total amount per region: CSV in through s3a, CSV out through s3a.\"\"\"
    import os

    from pyspark.sql import SparkSession, functions as F

    source, out = os.environ["sales_BUCKET"], os.environ["LOXO_OUTPUT_BUCKET"]
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("loxo-pipeline")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    print("s3a endpoint:", conf.get("fs.s3a.endpoint"))
    print("s3a path style:", conf.get("fs.s3a.path.style.access"))
    sales = spark.read.option("header", "true").schema("id INT, region STRING, amount INT")
    df = sales.csv(f"s3a://{source}/")
    totals = df.groupBy("region").agg(F.sum("amount").alias("total")).orderBy("region")
    totals.coalesce(1).write.mode("overwrite").option("header", "true").csv(
        f"s3a://{out}/totals"
    )
    spark.stop()
"""

SUMS = """
    \"\"\"Per input CSV, its row count and amount total as JSON, written through
    s3fs to the output bucket; with `s3`, the input is read through s3fs from
    the datum's input bucket, whose listing is recorded too.\"\"\"
    import json
    import os
    import sys
    from pathlib import Path

    import pandas as pd
    import s3fs

    mode = sys.argv[1]
    fs = s3fs.S3FileSystem(
        client_kwargs={"endpoint_url": os.environ["AWS_ENDPOINT_URL"]},
        config_kwargs={"s3": {"addressing_style": "path"}},
    )  # keys and region from AWS_* in the environment
    if mode == "s3":
        bucket = os.environ["csvs_BUCKET"]
        names = sorted(p.split("/", 1)[1] for p in fs.find(bucket))
        frames = {n: pd.read_csv(fs.open(f"{bucket}/{n}")) for n in names}
    else:
        folder = Path(os.environ["csvs"])
        names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        frames = {n: pd.read_csv(folder / n) for n in names}
    out = os.environ["LOXO_OUTPUT_BUCKET"]
    for name, df in frames.items():
        doc = {"listing": names, "rows": len(df), "total": int(df["amount"].sum())}
        with fs.open(f"{out}/sums/{name.rsplit('.', 1)[0]}.json", "w") as f:
            json.dump(doc, f)
"""


def sales_csv(rows: list[tuple[int, str, int]]) -> bytes:
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(["id", "region", "amount"])
    w.writerows(rows)
    return text.getvalue().encode()


def amounts_csv(seed: int, n: int) -> bytes:
    return ("id,amount\n" + "".join(f"{i},{(i * seed) % 97}\n" for i in range(n))).encode()


@pytest.fixture
def loxo_server(make_server: Callable[..., LoxoServer]) -> Iterator[tuple[LoxoServer, Client]]:
    server = make_server(extra_args=["--workers", "2"])
    with control(server) as loxo:
        yield server, loxo


# --------------------------------------------------------------------------- Spark


def test_a_spark_stage_reads_and_writes_through_s3a(
    loxo_server: tuple[LoxoServer, Client],
    s3a_jars: list[Path],  # noqa: F811 - the imported fixture
    require_binary: Callable[[str], str],
    require_module: Callable[[str], Any],
    tmp_path: Path,
) -> None:
    require_binary("java")
    require_module("pyspark")
    server, loxo = loxo_server
    s3 = server.client()
    script = write_script(tmp_path / "code", "spark_job.py", SPARK_JOB)
    loxo.create_repo("sales")
    rows = [(i, ("north", "south", "east")[i % 3], i * 7 % 50) for i in range(60)]
    files = {"q1.csv": sales_csv(rows[:30]), "q2.csv": sales_csv(rows[30:])}
    commit = commit_files(loxo, s3, "sales", files)
    loxo.create_pipeline(
        {
            "pipeline": {"name": "totals"},
            "input": {"pfs": {"repo": "sales", "glob": "/", "s3": True}},
            "transform": {
                "cmd": python_cmd(script),
                "env": {
                    # The jars only: every s3a setting comes from the worker's
                    # HADOOP_CONF_DIR / SPARK_CONF_DIR.
                    "PYSPARK_SUBMIT_ARGS": f"--jars {','.join(map(str, s3a_jars))} pyspark-shell",
                    "SPARK_LOCAL_IP": "127.0.0.1",
                },
            },
            "s3_out": True,
            "datum_tries": 1,  # S3A must work on the first try
        }
    )
    status = wait_done(loxo, "sales", commit, timeout=180)
    job = job_of(status, "totals")
    logs = job_logs(loxo, job["job"])
    assert job["state"] == "success", "\n".join(x["text"][-3000:] for x in logs)
    stdout = "".join(x["text"] for x in logs if x["stream"] == "stdout")
    assert f"s3a endpoint: {server.endpoint}" in stdout, stdout
    assert "s3a path style: true" in stdout, stdout
    out = objects(s3, "totals")
    parts = [k for k in out if k.startswith("totals/part-") and k.endswith(".csv")]
    assert len(parts) == 1 and "totals/_SUCCESS" in out, sorted(out)
    assert not [k for k in out if "_temporary" in k], sorted(out)
    expected: dict[str, int] = {}
    for _, region, amount in rows:
        expected[region] = expected.get(region, 0) + amount
    got = {
        r["region"]: int(r["total"]) for r in csv.DictReader(io.StringIO(out[parts[0]].decode()))
    }
    assert got == expected
    # Attributed to the one datum, whose inputs are both files.
    meta = s3.head_object(Bucket="totals", Key=parts[0])["Metadata"]
    prov = loxo.provenance("totals", parts[0])
    assert prov["producer"]["datum"] == meta["loxo-datum"]
    assert sorted(i["path"] for i in prov["inputs"]) == sorted(files)


NAMES = """
    \"\"\"Record the datum's bucket names (output, input) as its output.\"\"\"
    import os

    import boto3

    out = os.environ["LOXO_OUTPUT_BUCKET"]
    names = f"{out}\\n{os.environ['csvs_BUCKET']}\\n"
    boto3.client("s3").put_object(Bucket=out, Key=os.environ["LOXO_DATUM"], Body=names.encode())
"""


def test_every_datum_bucket_is_addressable_by_s3a(
    loxo_server: tuple[LoxoServer, Client], tmp_path: Path
) -> None:
    server, loxo = loxo_server
    s3 = server.client()
    script = write_script(tmp_path / "code", "names.py", NAMES)
    loxo.create_repo("csvs")
    files = {f"f{i}.csv": f"id\n{i}\n".encode() for i in range(6)}
    commit = commit_files(loxo, s3, "csvs", files)
    loxo.create_pipeline(
        {
            "pipeline": {"name": "names"},
            # Six datums, each with its own input and output bucket.
            "input": {"pfs": {"repo": "csvs", "glob": "/*", "s3": True}},
            "transform": {"cmd": python_cmd(script)},
            "s3_out": True,
        }
    )
    assert job_of(wait_done(loxo, "csvs", commit), "names")["state"] == "success"
    names = sorted({n for body in objects(s3, "names").values() for n in body.decode().split()})
    assert len(names) == 12, names
    # java.net.URI (RFC 2396): a host's last label starts with a letter.
    bad = [n for n in names if not n.rsplit(".", 1)[-1][:1].isalpha()]
    assert not bad, bad


# --------------------------------------------------------------------------- pandas/s3fs


def _sums_spec(script: Path, s3_input: bool) -> dict[str, Any]:
    pfs: dict[str, Any] = {"repo": "csvs", "glob": "/*"}
    if s3_input:
        pfs["s3"] = True
    return {
        "pipeline": {"name": "sums"},
        "input": {"pfs": pfs},
        "transform": {"cmd": python_cmd(script, "s3" if s3_input else "files")},
        "s3_out": True,
    }


def _run_sums(server: LoxoServer, loxo: Client, tmp_path: Path, s3_input: bool) -> None:
    """The sums stage over three CSVs, then one more: outputs, listings,
    attribution, and exactly one datum for the new file."""
    s3 = server.client()
    script = write_script(tmp_path / "code", "sums.py", SUMS)
    loxo.create_repo("csvs")
    files = {f"{c}.csv": amounts_csv(seed, 20 + seed) for seed, c in enumerate("abc", 3)}
    commit = commit_files(loxo, s3, "csvs", files)
    loxo.create_pipeline(_sums_spec(script, s3_input))
    status = wait_done(loxo, "csvs", commit)
    job = job_of(status, "sums")
    assert job["state"] == "success" and job["datums"]["success"] == 3, status

    def check(files: dict[str, bytes]) -> dict[str, bytes]:
        out = objects(s3, "sums")
        assert sorted(out) == sorted(f"sums/{k[:-4]}.json" for k in files)
        for name, body in files.items():
            key = f"sums/{name[:-4]}.json"
            doc = json.loads(out[key])
            amounts = [int(line.split(",")[1]) for line in body.decode().split()[1:]]
            # The datum saw ONLY its own file.
            assert doc == {"listing": [name], "rows": len(amounts), "total": sum(amounts)}
            # Written through S3, yet attributed to its datum.
            meta = s3.head_object(Bucket="sums", Key=key)["Metadata"]
            datum = loxo.inspect_datum(meta["loxo-job"], meta["loxo-datum"])
            assert [i["path"] for i in datum["inputs"]] == [f"/{name}"]
            prov = loxo.provenance("sums", key)
            assert prov["producer"]["datum"] == meta["loxo-datum"]
            assert [(i["repo"], i["path"]) for i in prov["inputs"]] == [("csvs", name)]
        return out

    before = check(files)
    more = {"d.csv": amounts_csv(11, 9)}
    commit = commit_files(loxo, s3, "csvs", more)
    status = wait_done(loxo, "csvs", commit)
    job = job_of(status, "sums")
    assert job["state"] == "success", status
    assert {k: v for k, v in job["datums"].items() if v} == {
        "success": 1,
        "unchanged": 3,
        "total": 4,
    }, job
    assert [d["inputs"][0]["path"] for d in datums(loxo, job["job"])] == ["/d.csv"]
    after = check({**files, **more})
    assert {k: after[k] for k in before} == before
    assert keys(s3, "sums") == sorted(after)


def test_a_pandas_s3fs_stage_writes_attributed_outputs_and_skips(
    loxo_server: tuple[LoxoServer, Client], tmp_path: Path
) -> None:
    server, loxo = loxo_server
    _run_sums(server, loxo, tmp_path, s3_input=False)


def test_an_s3_input_with_glob_star_shows_each_datum_only_its_files(
    loxo_server: tuple[LoxoServer, Client], tmp_path: Path
) -> None:
    server, loxo = loxo_server
    _run_sums(server, loxo, tmp_path, s3_input=True)
