"""What a datum's command sees: its environment variables, the `/pfs/`
rewriting of its arguments and stdin, and, in S3 mode, the configuration
files that point S3 clients (boto3, the aws CLI, Spark/Hadoop's s3a) at loxo.

The variables are those of docs/design/jobs.md: PACH_JOB_ID, PACH_DATUM_ID,
LOXO_JOB, LOXO_DATUM, LOXO_PIPELINE, LOXO_OUTPUT_BUCKET, `<input>` (its
folder) and `<input>_COMMIT`; in S3 mode also AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, `<input>_BUCKET`,
HADOOP_CONF_DIR and SPARK_CONF_DIR.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from workers.lease import Lease
from workers.transfer import S3Settings

PFS = "/pfs/"
# The worker's own loxo keys: user code gets keys only in S3 mode, as AWS_*.
_WORKER_SECRETS = ("LOXO_ACCESS_KEY", "LOXO_SECRET_KEY")
# A profile of the worker's machine would name one our config file lacks.
_AWS_OVERRIDDEN = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN")


def rewrite_pfs(text: str, folder: Path) -> str:
    """`/pfs/` -> `<folder>/pfs/`, so a Pachyderm spec's paths land in the datum folder."""
    return text.replace(PFS, f"{folder}/pfs/")


def s3a_properties(s3: S3Settings) -> dict[str, str]:
    """Hadoop's s3a settings for loxo: endpoint, path-style, keys, TLS per scheme."""
    secure = urlsplit(s3.endpoint).scheme == "https"
    return {
        "fs.s3a.endpoint": s3.endpoint,
        "fs.s3a.endpoint.region": s3.region,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.access.key": s3.access_key,
        "fs.s3a.secret.key": s3.secret_key,
        "fs.s3a.connection.ssl.enabled": "true" if secure else "false",
        "fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
    }


def write_s3_conf(conf: Path, s3: S3Settings) -> None:
    """core-site.xml and spark-defaults.conf (s3a), and an AWS config file
    (path-style addressing, which boto3 and the aws CLI read from no variable)."""
    conf.mkdir(parents=True, exist_ok=True)
    props = s3a_properties(s3)
    xml = ['<?xml version="1.0" encoding="UTF-8"?>', "<configuration>"]
    for name, value in props.items():
        xml.append(
            f"  <property><name>{escape(name)}</name><value>{escape(value)}</value></property>"
        )
    xml.append("</configuration>")
    (conf / "core-site.xml").write_text("\n".join(xml) + "\n", "utf-8")
    spark = [f"spark.hadoop.{name} {value}" for name, value in props.items()]
    (conf / "spark-defaults.conf").write_text("\n".join(spark) + "\n", "utf-8")
    aws = f"[default]\nregion = {s3.region}\ns3 =\n    addressing_style = path\n"
    (conf / "aws-config").write_text(aws, "utf-8")
    for name in ("core-site.xml", "spark-defaults.conf", "aws-config"):
        (conf / name).chmod(0o600)  # they hold the secret key


def datum_env(
    lease: Lease,
    folder: Path,
    s3: S3Settings,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The command's environment: `base` (default os.environ), the spec's
    `transform.env`, then loxo's variables (they win: they describe this datum)."""
    env = {k: v for k, v in (os.environ if base is None else base).items()}
    for name in _WORKER_SECRETS:
        env.pop(name, None)
    env.update(lease.transform.env)
    env.update(
        PACH_JOB_ID=lease.job,
        PACH_DATUM_ID=lease.datum,
        LOXO_JOB=lease.job,
        LOXO_DATUM=lease.datum,
        LOXO_PIPELINE=lease.pipeline,
        LOXO_OUTPUT_BUCKET=lease.output_bucket or "",
    )
    for item in lease.inputs:
        env[item.name] = str(folder / "pfs" / item.name)
        env[f"{item.name}_COMMIT"] = item.commit
    if lease.s3_mode:
        for name in _AWS_OVERRIDDEN:
            env.pop(name, None)
        conf = folder / "conf"
        env.update(
            AWS_ENDPOINT_URL=s3.endpoint,
            AWS_ENDPOINT_URL_S3=s3.endpoint,
            AWS_ACCESS_KEY_ID=s3.access_key,
            AWS_SECRET_ACCESS_KEY=s3.secret_key,
            AWS_DEFAULT_REGION=s3.region,
            AWS_REGION=s3.region,
            AWS_CONFIG_FILE=str(conf / "aws-config"),
            HADOOP_CONF_DIR=str(conf),
            SPARK_CONF_DIR=str(conf),
        )
        if isinstance(s3.verify, str):
            env["AWS_CA_BUNDLE"] = s3.verify
        for item in lease.inputs:
            env[f"{item.name}_BUCKET"] = item.bucket
    return env
