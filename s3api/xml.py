"""S3 XML: building response documents and parsing request documents.

Responses are written with a small escaping builder (listing pages of 1,000
keys are hot); requests are parsed with xmltodict, and any malformed document
becomes MalformedXML. So does any document with a DTD (`<!DOCTYPE ...>`: no
entity expansion, internal or external, ever happens) or nested deeper than
MAX_DEPTH elements: S3's request documents are a few levels deep.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from xml.parsers import expat

import xmltodict

from s3api.errors import MalformedXML

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_DEPTH = 32
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


class _Refused(Exception):
    """A DTD or too deep a document: MalformedXML."""


class _GuardedParser:
    """An expat parser that refuses DTDs and more than MAX_DEPTH nested
    elements; xmltodict sets its handlers through this, which wraps the
    element handlers to count the depth."""

    def __init__(self, parser: Any) -> None:
        object.__setattr__(self, "_parser", parser)
        object.__setattr__(self, "_depth", 0)
        parser.StartDoctypeDeclHandler = self._doctype

    def _doctype(self, *_: Any) -> None:
        raise _Refused("DTDs are not accepted")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "StartElementHandler":
            start = value

            def value(*args: Any) -> None:
                object.__setattr__(self, "_depth", self._depth + 1)
                if self._depth > MAX_DEPTH:
                    raise _Refused(f"documents nest at most {MAX_DEPTH} elements")
                start(*args)

        elif name == "EndElementHandler":
            end = value

            def value(*args: Any) -> None:
                object.__setattr__(self, "_depth", self._depth - 1)
                end(*args)

        setattr(self._parser, name, value)


class _GuardedExpat:
    """What xmltodict takes as its `expat` module."""

    ExpatError = expat.ExpatError

    @staticmethod
    def ParserCreate(*args: Any, **kwargs: Any) -> _GuardedParser:
        return _GuardedParser(expat.ParserCreate(*args, **kwargs))


def parse(body: bytes, root: str) -> dict[str, Any]:
    """Parse a request document whose root element must be `root`."""
    try:
        doc = xmltodict.parse(
            body, expat=_GuardedExpat, process_namespaces=False, disable_entities=True
        )
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
