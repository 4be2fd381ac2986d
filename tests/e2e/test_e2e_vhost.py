"""Virtual-host-style addressing (`loxo serve --domain s3.localtest`), end to end.

`<bucket>.s3.localtest` resolves nowhere, so requests go to 127.0.0.1 with that
Host header: either hand-signed with botocore and sent with http.client, or from
boto3 (addressing_style='virtual') with socket.getaddrinfo patched to send
`*.s3.localtest` to loopback. The signature covers the path as sent (the key,
without the bucket) and the Host header.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError
from conftest import REGION, LoxoServer, unique_name

DOMAIN = "s3.localtest"


@pytest.fixture(scope="module")
def vserver(
    tmp_path_factory: pytest.TempPathFactory, fresh_database: Callable[[], str]
) -> Iterator[LoxoServer]:
    srv = LoxoServer(domains=[DOMAIN]).start(
        tmp_path_factory.mktemp("vhost") / "data", fresh_database()
    )
    yield srv
    srv.stop()


@pytest.fixture
def resolve_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make s3.localtest and every name below it resolve to 127.0.0.1 in this process."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, bytes):
            host = host.decode()
        if isinstance(host, str) and (host == DOMAIN or host.endswith("." + DOMAIN)):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def send(
    server: LoxoServer,
    method: str,
    host: str,
    path: str = "/",
    query: str = "",
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    sign_host: str | None = None,
) -> tuple[int, bytes]:
    """Sign for http://<sign_host or host>:PORT<path>?<query> with botocore, send it to
    127.0.0.1:PORT with Host <host>:PORT, and return (status, body)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    target = f"{path}?{query}" if query else path
    signed_netloc = f"{sign_host or host}:{server.port}"
    all_headers = {"Host": signed_netloc, **(headers or {})}
    if body or method in ("PUT", "POST"):
        all_headers["Content-Length"] = str(len(body))
    request = AWSRequest(
        method=method, url=f"http://{signed_netloc}{target}", data=body, headers=all_headers
    )
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", REGION).add_auth(request)
    sent = dict(request.headers.items())
    sent["Host"] = f"{host}:{server.port}"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request(method, target, body=body or None, headers=sent)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def xml_values(body: bytes, tag: str) -> list[str]:
    root = ET.fromstring(body)
    return [el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == tag]


def vhost(bucket: str) -> str:
    return f"{bucket}.{DOMAIN}"


# -- hand-signed, over http.client ----------------------------------------------------


def test_create_put_get_list_delete(vserver: LoxoServer) -> None:
    repo = unique_name("vh")
    assert send(vserver, "PUT", vhost(repo))[0] == 200
    assert send(vserver, "HEAD", vhost(repo))[0] == 200

    key = "dir/a file+ü.txt"
    path = "/" + quote(key, safe="/~")
    status, _ = send(vserver, "PUT", vhost(repo), path, body=b"hello vhost")
    assert status == 200
    assert send(vserver, "GET", vhost(repo), path) == (200, b"hello vhost")
    assert send(vserver, "HEAD", vhost(repo), path)[0] == 200

    status, listing = send(vserver, "GET", vhost(repo), "/", "list-type=2&prefix=dir%2F")
    assert status == 200
    assert xml_values(listing, "Key") == [key]
    assert xml_values(listing, "Name") == [repo]

    # the same object, path style, through boto3
    s3 = vserver.client()
    assert s3.get_object(Bucket=repo, Key=key)["Body"].read() == b"hello vhost"

    assert send(vserver, "DELETE", vhost(repo), path)[0] == 204
    assert send(vserver, "GET", vhost(repo), path)[0] == 404
    assert send(vserver, "DELETE", vhost(repo))[0] == 204


def test_branch_bucket_with_a_dot(vserver: LoxoServer) -> None:
    repo = unique_name("vh")
    branch = f"{repo}.dev"
    assert send(vserver, "PUT", vhost(repo))[0] == 200
    assert send(vserver, "PUT", vhost(branch))[0] == 200
    assert send(vserver, "PUT", vhost(branch), "/only-on-dev", body=b"dev")[0] == 200
    assert send(vserver, "GET", vhost(branch), "/only-on-dev") == (200, b"dev")
    assert send(vserver, "GET", vhost(repo), "/only-on-dev")[0] == 404
    s3 = vserver.client()
    assert s3.get_object(Bucket=branch, Key="only-on-dev")["Body"].read() == b"dev"


def test_first_path_segment_is_part_of_the_key(vserver: LoxoServer) -> None:
    repo = unique_name("vh")
    other = unique_name("vh")
    s3 = vserver.client()
    s3.create_bucket(Bucket=repo)
    s3.create_bucket(Bucket=other)
    assert send(vserver, "PUT", vhost(repo), f"/{other}/key", body=b"x")[0] == 200
    assert s3.get_object(Bucket=repo, Key=f"{other}/key")["Body"].read() == b"x"
    assert s3.list_objects_v2(Bucket=other).get("KeyCount") == 0


def test_path_style_still_works(vserver: LoxoServer) -> None:
    repo = unique_name("vh")
    s3 = vserver.client()  # Host 127.0.0.1:PORT
    s3.create_bucket(Bucket=repo)
    s3.put_object(Bucket=repo, Key="k", Body=b"path style")
    # the bare domain is path style too
    assert send(vserver, "GET", DOMAIN, f"/{repo}/k") == (200, b"path style")
    status, listing = send(vserver, "GET", DOMAIN, "/")
    assert status == 200
    assert repo in xml_values(listing, "Name")
    # as is any host that is not below a configured domain
    assert send(vserver, "GET", "elsewhere.example", f"/{repo}/k") == (200, b"path style")


def test_signature_covers_the_host(vserver: LoxoServer) -> None:
    repo = unique_name("vh")
    vserver.client().create_bucket(Bucket=repo)
    status, body = send(vserver, "GET", vhost(repo), "/", sign_host=vhost("some-other-bucket"))
    assert status == 403
    assert xml_values(body, "Code") == ["SignatureDoesNotMatch"]


# -- boto3 with addressing_style='virtual' ------------------------------------------------


def virtual_client(server: LoxoServer, **config: Any) -> tuple[Any, list[str]]:
    """A boto3 client that addresses buckets by host name, and the URLs it sends."""
    client = server.client(
        endpoint_url=f"{server.scheme}://{DOMAIN}:{server.port}",
        s3={"addressing_style": "virtual"},
        **config,
    )
    urls: list[str] = []
    client.meta.events.register("before-send.s3", lambda request, **_: urls.append(request.url))
    return client, urls


@pytest.mark.usefixtures("resolve_to_loopback")
@pytest.mark.parametrize("suffix", ["", ".dev"])
def test_boto3_virtual_host_style(vserver: LoxoServer, suffix: str) -> None:
    repo = unique_name("vh")
    bucket = repo + suffix
    s3, urls = virtual_client(vserver)
    if suffix:
        s3.create_bucket(Bucket=repo)
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(50_000)
    s3.put_object(Bucket=bucket, Key="dir/obj.bin", Body=body, Metadata={"a": "b"})
    got = s3.get_object(Bucket=bucket, Key="dir/obj.bin")
    assert got["Body"].read() == body
    assert got["Metadata"] == {"a": "b"}
    assert s3.head_object(Bucket=bucket, Key="dir/obj.bin")["ContentLength"] == len(body)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/obj.bin"]
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "dir/obj.bin"}]})
    assert [d["Key"] for d in deleted["Deleted"]] == ["dir/obj.bin"]
    with pytest.raises(ClientError) as info:
        s3.head_object(Bucket=bucket, Key="dir/obj.bin")
    assert info.value.response["Error"]["Code"] == "404"
    prefix = f"http://{bucket}.{DOMAIN}:{vserver.port}/"
    assert urls and all(url.startswith(prefix) for url in urls[-6:]), urls


@pytest.mark.usefixtures("resolve_to_loopback")
def test_boto3_virtual_multipart_and_presigned(vserver: LoxoServer, tmp_path: Path) -> None:
    from boto3.s3.transfer import TransferConfig

    bucket = unique_name("vh")
    s3, urls = virtual_client(vserver)
    s3.create_bucket(Bucket=bucket)
    source = tmp_path / "big.bin"
    body = os.urandom(12 * 1024 * 1024)
    source.write_bytes(body)
    s3.upload_file(
        str(source), bucket, "big.bin", Config=TransferConfig(multipart_chunksize=5 << 20)
    )
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ETag"].endswith('-3"')
    assert all(url.startswith(f"http://{bucket}.{DOMAIN}:{vserver.port}/") for url in urls)
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "big.bin"}, ExpiresIn=300
    )
    assert url.startswith(f"http://{bucket}.{DOMAIN}:{vserver.port}/big.bin?")
    with urllib.request.urlopen(url, timeout=60) as resp:
        assert resp.read() == body


# -- over HTTPS (the test certificate covers *.s3.localtest: dotless buckets) --------------


@pytest.mark.usefixtures("resolve_to_loopback")
def test_boto3_virtual_host_style_over_https(make_server: Callable[..., LoxoServer]) -> None:
    server = make_server(tls=True, domains=[DOMAIN])
    bucket = unique_name("vhs")
    s3, urls = virtual_client(server)
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(40_000)
    s3.put_object(Bucket=bucket, Key="secure.bin", Body=body)  # aws-chunked over HTTPS
    assert s3.get_object(Bucket=bucket, Key="secure.bin")["Body"].read() == body
    listed = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["secure.bin"]
    assert all(url.startswith(f"https://{bucket}.{DOMAIN}:{server.port}/") for url in urls)
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "secure.bin"}, ExpiresIn=300
    )
    context = ssl.create_default_context(cafile=str(server.ca_bundle))
    with urllib.request.urlopen(url, context=context, timeout=60) as resp:
        assert resp.read() == body


@pytest.mark.usefixtures("resolve_to_loopback")
def test_boto3_virtual_host_style_with_sigv2(vserver: LoxoServer) -> None:
    # SigV2 signs /bucket/key whatever the addressing style: the server must put
    # the Host header's bucket back in front of the path.
    bucket = unique_name("vh")
    s3, urls = virtual_client(vserver, signature_version="s3")
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(20_000)
    s3.put_object(Bucket=bucket, Key="dir/v2 ü.bin", Body=body)
    assert s3.get_object(Bucket=bucket, Key="dir/v2 ü.bin")["Body"].read() == body
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/v2 ü.bin"]
    s3.delete_object(Bucket=bucket, Key="dir/v2 ü.bin")
    assert all(url.startswith(f"http://{bucket}.{DOMAIN}:{vserver.port}/") for url in urls), urls
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "gone"})
    assert "AWSAccessKeyId=" in url and url.startswith(f"http://{bucket}.{DOMAIN}:")
    import httpx

    resp = httpx.get(url, timeout=30)  # signature accepted, then: no such key
    assert resp.status_code == 404 and xml_values(resp.content, "Code") == ["NoSuchKey"]
