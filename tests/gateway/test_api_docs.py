"""docs/api.md lists every control API operation and error code."""

from __future__ import annotations

from pathlib import Path

from gateway.api.errors import API_CODES, domain_codes
from gateway.api.operations import OPERATIONS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text("utf-8")


def test_every_operation_is_documented() -> None:
    missing = [
        f"{o.method} {o.path}" for o in OPERATIONS if f"| {o.method} | `{o.path}` |" not in DOC
    ]
    assert not missing, f"docs/api.md lacks rows for {missing}"


def test_every_error_code_is_documented() -> None:
    codes = {code for _, _, code in domain_codes()} | {code for _, code, _ in API_CODES}
    missing = sorted(c for c in codes if f"| `{c}` |" not in DOC)
    assert not missing, f"docs/api.md lacks the error codes {missing}"


def test_the_openapi_document_is_valid_openapi_3_1() -> None:
    from openapi_spec_validator import validate

    from gateway.api.openapi import document

    doc = document()
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # type: ignore[arg-type]
