"""The domain -> S3 error table is complete and documented, and every error
document has the same shape.

`.venv/bin/python tests/s3api/test_error_table.py` prints the tables docs/errors.md must
hold (paste them there when the code changes).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import versioning
from gateway import http_errors
from s3api import errors as s3errors
from s3api import routing
from s3api.app import error_response
from versioning import errors as dom

ROOT = Path(__file__).resolve().parents[2]

DOC = ROOT / "docs" / "errors.md"

# Domain errors that rightly become InternalError: the server lost or damaged data.
INTERNAL_ON_PURPOSE = {"CorruptData", "ChunkMissing"}

# Bases that group errors and are never raised themselves (checked below).
ABSTRACT = {dom.NotFound, dom.AlreadyExists}


def domain_errors() -> list[type[dom.VersioningError]]:
    """Every subclass of VersioningError, recursively, in every versioning module."""
    for module in pkgutil.walk_packages(versioning.__path__, "versioning."):
        importlib.import_module(module.name)
    found: list[type[dom.VersioningError]] = []
    pending = list(dom.VersioningError.__subclasses__())
    while pending:
        cls = pending.pop(0)
        if cls not in found:
            found.append(cls)
            pending.extend(cls.__subclasses__())
    return found


def concrete_domain_errors() -> list[type[dom.VersioningError]]:
    """The raisable domain errors, in the order of their definitions."""
    concrete = [cls for cls in domain_errors() if cls not in ABSTRACT]
    return sorted(
        concrete,
        key=lambda cls: (
            cls.__module__ != dom.__name__,
            cls.__module__,
            inspect.getsourcelines(cls)[1],
        ),
    )


def domain_rows() -> list[str]:
    rows = []
    for cls in concrete_domain_errors():
        err = s3errors.from_domain(cls("detail"))
        rows.append(f"| `{cls.__name__}` | `{err.code}` | {err.status} |")
    return rows


def header_rows() -> list[str]:
    rows = []
    for rule in routing.UNSUPPORTED_HEADERS:
        actions = ", ".join(rule.actions)
        rows.append(f"| `{rule.header}` | {rule.accepted} | {actions} |")
    return rows


# --------------------------------------------------------------------------- the table


def test_the_walk_finds_the_hierarchy() -> None:
    names = {cls.__name__ for cls in domain_errors()}
    assert {"RepoNotFound", "DefaultBranchInUse", "ChunkMissing", "CorruptData"} <= names


@pytest.mark.parametrize("cls", concrete_domain_errors(), ids=lambda cls: cls.__name__)
def test_every_domain_error_has_a_specific_code(cls: type[dom.VersioningError]) -> None:
    err = s3errors.from_domain(cls("some detail"))
    assert isinstance(err, s3errors.S3Error)
    if cls.__name__ in INTERNAL_ON_PURPOSE:
        assert (err.code, err.status) == ("InternalError", 500)
    else:
        assert err.code != "InternalError", (
            f"{cls.__module__}.{cls.__name__} has no row in s3api.errors._DOMAIN_TABLE"
        )
        assert 400 <= err.status < 600


def test_allow_list_names_real_classes() -> None:
    names = {cls.__name__ for cls in domain_errors()}
    assert names >= INTERNAL_ON_PURPOSE


def test_abstract_bases_are_never_raised() -> None:
    sources = [
        path
        for package in ("versioning", "s3api", "gateway")
        for path in (ROOT / package).rglob("*.py")
    ]
    for cls in ABSTRACT:
        assert cls.__subclasses__(), cls
        called = re.compile(rf"(?<!class )\b{cls.__name__}\(")
        for path in sources:
            assert not called.search(path.read_text()), f"{path} raises the bare {cls.__name__}"


def test_the_base_error_is_internal() -> None:
    err = s3errors.from_domain(dom.VersioningError())
    assert (err.code, err.status) == ("InternalError", 500)


def test_not_found_messages_are_s3_wording() -> None:
    err = s3errors.from_domain(dom.ObjectNotFound("repo/main/some/key"))
    assert err.message == s3errors.NoSuchKey.default_message


# --------------------------------------------------------------------------- the document


def test_docs_list_every_domain_row() -> None:
    text = DOC.read_text()
    missing = [row for row in domain_rows() if row not in text]
    assert not missing, "docs/errors.md lacks (run this file to print the table):\n" + "\n".join(
        missing
    )


def test_docs_list_every_unsupported_header() -> None:
    text = DOC.read_text()
    missing = [row for row in header_rows() if row not in text]
    assert not missing, "docs/errors.md lacks (run this file to print the table):\n" + "\n".join(
        missing
    )


def test_docs_name_every_s3_code_in_the_domain_table() -> None:
    text = DOC.read_text()
    for _domain_cls, s3_cls in s3errors._DOMAIN_TABLE:
        assert f"`{s3_cls.code}`" in text


# --------------------------------------------------------------------------- error documents


def all_s3_errors() -> list[type[s3errors.S3Error]]:
    classes = [
        cls
        for cls in vars(s3errors).values()
        if isinstance(cls, type) and issubclass(cls, s3errors.S3Error)
    ]
    return [*classes, http_errors.BadRequest]


@pytest.mark.parametrize("cls", all_s3_errors(), ids=lambda cls: cls.__name__)
def test_every_error_document_has_the_four_fields(cls: type[s3errors.S3Error]) -> None:
    response = error_response(cls(), "/bucket/a <key>", "0123456789ABCDEF", "PUT")
    assert response.status_code == cls.status
    if cls.status == 304:
        assert response.body == b""
        return
    assert response.media_type == "application/xml"
    assert response.headers["x-amz-request-id"] == "0123456789ABCDEF"
    root = ET.fromstring(response.body)
    assert root.tag == "Error"
    fields = {child.tag: child.text for child in root}
    assert fields["Code"] == cls.code
    assert fields["Message"] == cls.default_message
    assert fields["Resource"] == "/bucket/a <key>"
    assert fields["RequestId"] == "0123456789ABCDEF"


def test_error_document_carries_extra_fields_and_escapes() -> None:
    err = s3errors.InvalidArgument("bad & <worse>", ArgumentName="x-amz-acl", ArgumentValue="a&b")
    response = error_response(err, "/b", "ID", "GET")
    fields = {child.tag: child.text for child in ET.fromstring(response.body)}
    assert fields["Message"] == "bad & <worse>"
    assert fields["ArgumentName"] == "x-amz-acl"
    assert fields["ArgumentValue"] == "a&b"
    assert list(fields)[:2] == ["Code", "Message"]
    assert {"Resource", "RequestId"} <= set(fields)


def test_head_errors_have_no_body() -> None:
    response = error_response(s3errors.NoSuchKey(), "/b/k", "ID", "HEAD")
    assert response.status_code == 404
    assert response.body == b""
    assert response.headers["x-amz-request-id"] == "ID"


@pytest.mark.parametrize(
    ("problem", "code"),
    [
        ("Invalid character in Content-Length", "InvalidArgument"),
        ("Duplicate Content-Length", "InvalidArgument"),
        ("bad Content-Length", "InvalidArgument"),
        ("Transfer-Encoding can't be present with Content-Length", "BadRequest"),
        ("Invalid header value char", "BadRequest"),
        ("Invalid method encountered", "BadRequest"),
    ],
)
def test_parser_errors_become_s3_codes(problem: str, code: str) -> None:
    err = http_errors.parser_error(problem)
    assert (err.code, err.status) == (code, 400)
    raw = http_errors.rejection(err, "/b/k")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"\r\ncontent-type: application/xml" in head
    assert b"\r\nconnection: close" in head
    assert f"content-length: {len(body)}".encode() in head
    fields = {child.tag: child.text for child in ET.fromstring(body)}
    assert fields["Code"] == code
    assert fields["Resource"] == "/b/k"
    assert fields["RequestId"]


if __name__ == "__main__":
    print("| Domain error | S3 code | Status |\n|---|---|---|")
    print("\n".join(domain_rows()))
    print()
    print("| Header | Accepted values | Refused on |\n|---|---|---|")
    print("\n".join(header_rows()))


# --------------------------------------------------------------------------- header rules


@pytest.mark.parametrize(
    ("action", "headers", "refused"),
    [
        ("PutObject", {"x-amz-tagging": "a=b"}, None),  # served: tags are stored
        ("PutObject", {"x-amz-tagging": ""}, None),
        ("PutObject", {"x-amz-acl": "private"}, None),
        ("PutObject", {"x-amz-acl": "Private"}, None),
        ("PutObject", {"x-amz-acl": "bucket-owner-full-control"}, None),
        ("PutObject", {"x-amz-acl": "public-read"}, "x-amz-acl"),
        # Not a canned ACL at all: the write answers InvalidArgument itself.
        ("PutObject", {"x-amz-acl": "not-a-real-acl"}, None),
        ("UploadPart", {"x-amz-acl": "not-a-real-acl"}, "x-amz-acl"),
        ("PutObject", {"x-amz-storage-class": "STANDARD"}, None),
        ("PutObject", {"x-amz-storage-class": "GLACIER"}, "x-amz-storage-class"),
        ("PutObject", {"x-amz-server-side-encryption": "AES256"}, "x-amz-server-side-encryption"),
        (
            "UploadPart",
            {"x-amz-server-side-encryption-customer-algorithm": "AES256"},
            "x-amz-server-side-encryption-customer-algorithm",
        ),
        (
            "CreateMultipartUpload",
            {"x-amz-object-lock-mode": "GOVERNANCE"},
            "x-amz-object-lock-mode",
        ),
        ("PutObject", {"x-amz-grant-read": "id=x"}, "x-amz-grant-read"),
        ("PutObject", {"x-amz-website-redirect-location": "/x"}, "x-amz-website-redirect-location"),
        (
            "PutObject",
            {"x-amz-copy-source": "/b/k", "x-amz-storage-class": "X"},
            "x-amz-storage-class",
        ),
        ("PutObject", {"x-amz-meta-tagging": "a=b", "x-amz-grantee": "x"}, None),
        ("GetObject", {"x-amz-storage-class": "GLACIER"}, None),
        ("PutObjectAcl", {"x-amz-acl": "public-read"}, None),  # stubs.py's own check
    ],
)
def test_unsupported_header_rules(
    action: str, headers: dict[str, str], refused: str | None
) -> None:
    found = routing.unsupported_header(action, headers)
    assert (found[0] if found else None) == refused


def test_copies_are_named_for_the_header_rules() -> None:
    copy = {"x-amz-copy-source": "/b/k"}
    assert routing.header_action("PutObject", copy) == "CopyObject"
    assert routing.header_action("UploadPart", copy) == "UploadPartCopy"
    assert routing.header_action("PutObject", {}) == "PutObject"
    assert routing.header_action("GetObject", copy) == "GetObject"


def test_header_rules_name_routed_actions() -> None:
    routed = {action for _, _, action in routing._OBJECT} | {"CopyObject", "UploadPartCopy"}
    for rule in routing.UNSUPPORTED_HEADERS:
        assert set(rule.actions) <= routed, rule
        assert rule.header == rule.header.lower()
