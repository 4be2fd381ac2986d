"""ObjectEntry's canonical wire form: optional trailing elements (`parts`,
then `tags`) keep every entry encoded before them byte-identical."""

from __future__ import annotations

import dataclasses

from versioning.ids import ContentId, VersionId
from versioning.model import ObjectEntry, pack, unpack
from versioning.views import ObjectAttrs, new_entry

# Wire lists as loxo wrote them before tags existed: single-part, multipart.
OLD_SINGLE = [3, b"c" * 16, "etag", "text/plain", 1, b"v" * 16, [["a", "b"]], [], [["crc32", "x"]]]
OLD_MULTIPART = [*OLD_SINGLE[:2], "etag-2", *OLD_SINGLE[3:], [2, 1]]


def test_old_encodings_round_trip_byte_identically() -> None:
    for old in (OLD_SINGLE, OLD_MULTIPART):
        data = pack(old)
        entry = ObjectEntry.from_wire(unpack(data))
        assert entry.tags == {}
        # A fresh entry with the same values (no cached wire form) encodes the same bytes.
        fresh = dataclasses.replace(entry)
        assert fresh._wire is None
        assert pack(fresh.to_wire()) == data
        assert fresh.packed() == data


def test_tags_are_a_sorted_trailing_element() -> None:
    entry = ObjectEntry.from_wire(list(OLD_SINGLE))
    tagged = dataclasses.replace(entry, tags={"z": "1", "a": "2"})
    wire = tagged.to_wire()
    assert wire[:9] == OLD_SINGLE
    assert wire[9:] == [[], [["a", "2"], ["z", "1"]]]  # empty parts, then sorted pairs
    back = ObjectEntry.from_wire(unpack(pack(wire)))
    assert back == tagged and back.parts == ()
    # Insertion order does not change the bytes (one value, one encoding).
    other = dataclasses.replace(entry, tags={"a": "2", "z": "1"})
    assert other.packed() == tagged.packed()
    multipart = dataclasses.replace(ObjectEntry.from_wire(list(OLD_MULTIPART)), tags={"k": "v"})
    assert multipart.to_wire()[9:] == [[2, 1], [["k", "v"]]]
    assert ObjectEntry.from_wire(unpack(multipart.packed())) == multipart


def test_object_attrs_carry_tags_to_the_entry() -> None:
    old = pack(["text/plain", [["m", "1"]], []])  # an upload created before tags
    attrs = ObjectAttrs.decode(old)
    assert attrs.tags == {} and attrs.encode() == old
    tagged = dataclasses.replace(attrs, tags={"t": "1"})
    assert ObjectAttrs.decode(tagged.encode()) == tagged
    entry = new_entry(ContentId(b"c" * 16), 1, "e", tagged)
    assert entry.tags == {"t": "1"} and entry.version != VersionId(b"")
