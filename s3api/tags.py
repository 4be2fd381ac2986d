"""Object tags in S3's two spellings, checked against S3's limits.

A tag set arrives as the `x-amz-tagging` header (PutObject, CopyObject with
`x-amz-tagging-directive: REPLACE`, CreateMultipartUpload: a URL-encoded query
string, `k1=v1&k2=v2`) or as a PutObjectTagging `<Tagging>` document. Either
way it obeys AWS's rules: at most 10 tags, keys unique, a key 1 to 128 and a
value 0 to 256 Unicode characters of letters, digits, white space and
`+ - = . _ : / @`, and no key starting with `aws:` (reserved for AWS).

The errors are AWS's: more than 10 tags is BadRequest, a repeated key
InvalidTag in a document and InvalidArgument in the header, a key or value
that breaks a rule InvalidTag, a document that is not a Tagging one MalformedXML.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl

from s3api import xml
from s3api.errors import BadRequest, InvalidArgument, InvalidTag, MalformedXML

MAX_TAGS = 10
MAX_KEY = 128
MAX_VALUE = 256
_PUNCTUATION = frozenset("+-=._:/@")
HEADER = "x-amz-tagging"


def _allowed(text: str) -> bool:
    return all(c.isalnum() or c.isspace() or c in _PUNCTUATION for c in text)


def check(pairs: list[tuple[str, str]], duplicate: Exception) -> dict[str, str]:
    """The tag set `pairs` (in request order) as a dict, or the S3 error
    that refuses it; `duplicate` is raised for a repeated key."""
    if len(pairs) > MAX_TAGS:
        raise BadRequest(f"Object tags cannot be greater than {MAX_TAGS}")
    tags: dict[str, str] = {}
    for key, value in pairs:
        if key in tags:
            raise duplicate
        if not key or not _allowed(key):
            raise InvalidTag("The TagKey you have provided is invalid")
        if len(key) > MAX_KEY:
            raise InvalidTag(f"The TagKey you have provided is too long, max {MAX_KEY}")
        if key.startswith("aws:"):
            raise InvalidTag("Your TagKey cannot be prefixed with aws:")
        if not _allowed(value):
            raise InvalidTag("The TagValue you have provided is invalid")
        if len(value) > MAX_VALUE:
            raise InvalidTag(f"The TagValue you have provided is too long, max {MAX_VALUE}")
        tags[key] = value
    return tags


def _bad_header(raw: str) -> InvalidArgument:
    return InvalidArgument(
        "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query "
        "parameters without tag name duplicates.",
        ArgumentName=HEADER,
        ArgumentValue=raw,
    )


def from_header(headers: Mapping[str, str]) -> dict[str, str]:
    """The tag set of an `x-amz-tagging` header (absent or empty: none)."""
    raw = headers.get(HEADER, "").strip()
    if not raw:
        return {}
    try:
        # Header values arrive decoded as latin-1; percent-escapes are UTF-8.
        text = raw.encode("latin-1").decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except (UnicodeError, ValueError):
        raise _bad_header(raw) from None
    return check(pairs, _bad_header(raw))


def from_document(body: bytes) -> dict[str, str]:
    """The tag set of a PutObjectTagging body:
    `<Tagging><TagSet><Tag><Key/><Value/></Tag>...</TagSet></Tagging>`."""
    doc = xml.parse(body, "Tagging")
    if "TagSet" not in doc:
        raise MalformedXML()
    tag_set = doc["TagSet"]  # None when empty: no tags
    if tag_set is not None and not isinstance(tag_set, dict):
        raise MalformedXML()
    items = xml.as_list(tag_set.get("Tag")) if tag_set else []
    pairs: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, dict) or "Key" not in item or "Value" not in item:
            raise MalformedXML()
        key, value = item["Key"], item["Value"]
        if not isinstance(key, str | None) or not isinstance(value, str | None):
            raise MalformedXML()
        pairs.append((key or "", value or ""))
    return check(pairs, InvalidTag("Cannot provide multiple Tags with the same key"))


def document(tags: Mapping[str, str]) -> bytes:
    """A GetObjectTagging answer: the tags in key order."""
    return xml.document(
        "Tagging",
        [("TagSet", [("Tag", [("Key", k), ("Value", tags[k])]) for k in sorted(tags)])],
    )
