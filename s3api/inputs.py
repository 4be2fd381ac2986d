"""Client text checked before it is used: numbers, text bound for the database,
and text bound for a response header. Both APIs (S3 and the control API) use
these, so each kind of hostile input is refused the same way everywhere.

- Numbers: `decimal` reads ASCII digits only (str.isdigit() also accepts `²`,
  which int() refuses) and never hands int() more digits than a value can
  matter: Python refuses to convert more than 4,300 digits, and a 5,000-digit
  Range must not be a 500.
- Stored text: PostgreSQL's text cannot hold NUL (U+0000), and no UTF-8
  encoder takes a lone surrogate (U+D800..U+DFFF, e.g. from a JSON "\\ud800").
- Header text: CR, LF, NUL and the other control characters (HTAB aside) cannot
  be written into a response header (h11 and httptools then drop the
  connection); decoded text is sent as its UTF-8 bytes, as S3 does.
"""

from __future__ import annotations

import re

from s3api.errors import InvalidArgument

#: More significant digits than any size, offset or count loxo deals in.
MAX_DIGITS = 19
#: What `decimal` answers for a number of more than MAX_DIGITS significant
#: digits: larger than every object size, part number or page size.
HUGE: int = 10**MAX_DIGITS

#: The largest count S3 accepts in max-keys, max-parts, max-uploads, ... (a Java int).
MAX_INT = 2**31 - 1

_DIGITS = re.compile(r"[0-9]+")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_HEADER_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def decimal(text: str) -> int | None:
    """The value of `text` if it is only ASCII digits (leading zeros allowed,
    no sign, no spaces); None otherwise. More than MAX_DIGITS significant
    digits answer HUGE, so callers compare against their bounds as usual."""
    if not _DIGITS.fullmatch(text):
        return None
    significant = text.lstrip("0")
    if len(significant) > MAX_DIGITS:
        return HUGE
    return int(significant or "0")


def int_argument(name: str, raw: str) -> int:
    """A count or marker of the query string (max-keys, max-parts,
    part-number-marker, ...): 0 to MAX_INT, else InvalidArgument, as S3."""
    value = decimal(raw)
    if value is None or value > MAX_INT:
        raise InvalidArgument(
            f"Provided {name} not an integer or within integer range: "
            f"it must be an integer between 0 and {MAX_INT}",
            ArgumentName=name,
            ArgumentValue=raw[:100],
        )
    return value


def unstorable(text: str) -> str | None:
    """Why `text` cannot be stored (a NUL, a lone surrogate), or None."""
    m = _UNSTORABLE.search(text)
    if m is None:
        return None
    if m.group() == "\x00":
        return "contains a NUL character (U+0000)"
    return f"contains a lone surrogate (U+{ord(m.group()):04X}), which is not a character"


def refuse_unstorable(key: str | None, query: list[tuple[str, str]]) -> None:
    """InvalidArgument when an S3 request's key or a query parameter (prefix,
    marker, continuation-token, key-marker, uploadId, ...) holds text the
    database cannot store. S3 itself takes a NUL in a key; loxo's history
    index cannot, so it is refused on reads and writes alike."""
    if key is not None and (problem := unstorable(key)) is not None:
        raise InvalidArgument(f"The object key {problem}", ArgumentName="key")
    for name, value in query:
        problem = unstorable(name) or unstorable(value)
        if problem is not None:
            raise InvalidArgument(
                f"The query parameter {name!r} {problem}", ArgumentName=name[:100]
            )


def header_unsafe(text: str) -> str | None:
    """Why `text` cannot be a response header's value (a line break, NUL or
    another control character), or None."""
    m = _HEADER_UNSAFE.search(text)
    if m is None:
        return None
    return f"contains the control character U+{ord(m.group()):04X}"


def header_value(text: str) -> str:
    """Decoded (Unicode) text, e.g. from the query string, as starlette must be
    given it to send the text's UTF-8 bytes: starlette writes header values as
    Latin-1, so this is the Latin-1 reading of those bytes (ASCII is unchanged)."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")
