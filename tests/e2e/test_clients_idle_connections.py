"""Clients that keep idle keep-alive connections open must not hold up a clean
shutdown of an HTTPS server.

boto3 (urllib3's pool) and the Spark JVM keep HTTPS connections open between
requests and read nothing from them while idle. On SIGTERM loxo must still
exit promptly (README: in-flight requests finish, then it stops); an idle
connection is not an in-flight request. aiohttp-based clients (aioboto3, s3fs)
read their idle sockets and answer the TLS close_notify, so they are the
contrast case.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

STOP_WITHIN = 5.0  # seconds; an idle HTTP connection costs well under 1 s


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_sigterm_with_an_idle_boto3_connection(make_server: Callable[..., Any], tls: bool) -> None:
    srv = make_server(tls=tls)
    s3 = srv.client()
    s3.create_bucket(Bucket="idle")
    s3.put_object(Bucket="idle", Key="k", Body=b"v")  # the connection stays in the pool
    started = time.monotonic()
    code = srv.stop(timeout=60)
    took = time.monotonic() - started
    assert code == 0, srv.log_text()[-2000:]
    assert took < STOP_WITHIN, (
        f"loxo ({srv.scheme}) took {took:.1f} s to exit on SIGTERM while a boto3 client "
        "held one idle keep-alive connection"
    )


def test_sigterm_with_an_idle_aioboto3_connection(
    make_server: Callable[..., Any], require_module: Callable[[str], Any]
) -> None:
    aioboto3 = require_module("aioboto3")
    srv = make_server(tls=True)

    async def scenario() -> tuple[int | None, float]:
        async with aioboto3.Session().client(
            "s3",
            endpoint_url=srv.endpoint,
            region_name="us-east-1",
            aws_access_key_id=srv.access_key,
            aws_secret_access_key=srv.secret_key,
            verify=str(srv.ca_bundle),
        ) as s3:
            await s3.list_buckets()
            started = time.monotonic()
            code = await asyncio.to_thread(srv.stop, timeout=60)
            return code, time.monotonic() - started

    code, took = asyncio.run(scenario())
    assert code == 0
    assert took < STOP_WITHIN, f"took {took:.1f} s"
