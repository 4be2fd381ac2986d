"""S3 XML: building response documents and parsing request documents.

Responses are written with a small escaping builder (listing pages of 1,000
keys are hot); requests are parsed with xmltodict, and any malformed document
becomes MalformedXML.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import xmltodict

from s3api.errors import MalformedXML

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'

# &, <, > and every control character but tab and newline become references,
# as S3 writes them: a raw CR would be read back as LF by any XML parser.
_ESCAPES = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;"}
_ESCAPES.update({c: f"&#{c};" for c in range(32) if c not in (9, 10)})
_ESCAPES[0x7F] = "&#127;"


def escape(text: str) -> str:
    return text.translate(_ESCAPES)


# An element is (name, text) or (name, [children]); None values are skipped.
Element = tuple[str, Any]


def iso8601(us: int) -> str:
    dt = datetime.fromtimestamp(us / 1_000_000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def http_date(us: int) -> str:
    return datetime.fromtimestamp(us // 1_000_000, tz=UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def _write(out: list[str], name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, list):
        out.append(f"<{name}>")
        for child_name, child_value in value:
            _write(out, child_name, child_value)
        out.append(f"</{name}>")
    elif isinstance(value, bool):
        out.append(f"<{name}>{'true' if value else 'false'}</{name}>")
    else:
        out.append(f"<{name}>{escape(str(value))}</{name}>")


def document(root: str, children: Iterable[Element], namespace: bool = True) -> bytes:
    out = [HEADER, f'<{root} xmlns="{NS}">' if namespace else f"<{root}>"]
    for name, value in children:
        _write(out, name, value)
    out.append(f"</{root}>")
    return "".join(out).encode("utf-8")


def parse(body: bytes, root: str) -> dict[str, Any]:
    """Parse a request document whose root element must be `root`."""
    try:
        doc = xmltodict.parse(body, process_namespaces=False, disable_entities=True)
    except Exception:
        raise MalformedXML() from None
    if not isinstance(doc, dict) or len(doc) != 1:
        raise MalformedXML()
    ((name, content),) = doc.items()
    if name.split(":")[-1] != root:
        raise MalformedXML()
    return content if isinstance(content, dict) else {}


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
