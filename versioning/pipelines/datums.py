"""Datums: the units of work a pipeline's inputs split into, their ids, and the plan
of a job (which datums run, which are skipped, whose outputs go).

Pure domain code: inputs are plain listings (key -> content id) of one commit
each; nothing here reads a database.

- `pfs_datums`: one datum per path the input's glob matches (see `globs`).
- `cross`: the cartesian product of datum sets, first set outermost.
- `union`: the datum sets one after the other.
- `join`: each path's key is `join_on` with `$N` replaced by the glob's N-th
  capture; datums of equal keys are crossed (one from each input). A key some
  input lacks yields nothing, unless an input that has it is `outer_join`: then
  the cross of the inputs that have it (so an outer input keeps its unmatched
  datums, alone).
- `group`: each path's key is `group_by` with `$N` replaced; one datum per key,
  holding every matching path of every input.
  Keys are sorted; in a datum, inputs come in the order given, paths sorted.
- `datum_id`: hex BLAKE3 (128 bits) of `pack(["loxo.datum.v1", salt, [[name,
  repo, branch, path, [[key, content id], ...]], ...]])`, the inputs in datum
  order and each input's files sorted by key. Commit ids are left out, so an
  unchanged file in a new commit keeps its datum's id: that is what lets a job
  skip it. (Pachyderm's hash: the same fields, worker/common/common.go.)
- `plan`: compares the current datums with every earlier outcome under the salt.

`empty_files` is ignored: a worker sees file contents through S3, never empty
placeholders. `lazy`, `s3` and `reference` inputs change how a worker reads,
not which datums exist.

Costs: `pfs_datums` is one pass over the listing given (the caller lists only
under `Glob.prefix`); `cross` is the product of the sizes, by definition;
`join`/`group` hash by key, O(total datums + output); `plan` is O(datums) given
the past outcomes as a mapping.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from versioning.ids import short_hash
from versioning.model import pack
from versioning.pipelines.globs import Glob, compile_glob

DATUM_HASH_TAG = "loxo.datum.v1"
LOCATION_HASH_TAG = "loxo.datum-location.v1"


@dataclass(frozen=True)
class PfsListing:
    """One input commit's files: key -> content id."""

    name: str
    repo: str
    branch: str
    commit: str
    files: Mapping[str, bytes]


@dataclass(frozen=True)
class PfsInput:
    """A pfs input: its listing and how it splits into datums."""

    listing: PfsListing
    glob: str
    join_on: str = ""
    group_by: str = ""
    outer_join: bool = False


@dataclass(frozen=True)
class DatumInput:
    """One matched path of one input, with the files it covers (sorted by key)."""

    name: str
    repo: str
    branch: str
    commit: str
    path: str
    files: tuple[tuple[str, bytes], ...]


Datum = tuple[DatumInput, ...]


def _matches(inp: PfsInput) -> list[tuple[DatumInput, Glob]]:
    glob = compile_glob(inp.glob)
    listing = inp.listing
    out = []
    for path, keys in glob.match(listing.files).items():
        files = tuple((k, listing.files[k]) for k in keys)
        out.append(
            (
                DatumInput(listing.name, listing.repo, listing.branch, listing.commit, path, files),
                glob,
            )
        )
    return out


def pfs_datums(inp: PfsInput) -> list[Datum]:
    """One datum per path the glob matches, in path order."""
    return [(d,) for d, _ in _matches(inp)]


def cross(*sets: Sequence[Datum]) -> list[Datum]:
    """Every combination of one datum from each set (the first set varies slowest)."""
    if not sets:
        raise ValueError("a cross needs at least one input")
    return [tuple(itertools.chain.from_iterable(combo)) for combo in itertools.product(*sets)]


def union(*sets: Sequence[Datum]) -> list[Datum]:
    """The datums of each set, one set after the other."""
    if not sets:
        raise ValueError("a union needs at least one input")
    return [d for s in sets for d in s]


_DOLLAR = re.compile(r"\$(\d+)")


def substitute(template: str, captures: tuple[str, ...], *, what: str = "join_on") -> str:
    """`template` with each `$N` replaced by the N-th capture (1-based)."""

    def one(m: re.Match[str]) -> str:
        n = int(m.group(1))
        if not 1 <= n <= len(captures):
            raise ValueError(
                f"{what} {template!r} refers to ${n}, but the glob has {len(captures)} "
                "capture group(s)"
            )
        return captures[n - 1]

    return _DOLLAR.sub(one, template)


def _keyed(inp: PfsInput, template: str, what: str) -> dict[str, list[DatumInput]]:
    out: dict[str, list[DatumInput]] = {}
    for d, glob in _matches(inp):
        captures = glob.captures(d.path)
        assert captures is not None
        out.setdefault(substitute(template, captures, what=what), []).append(d)
    return out


def join(*inputs: PfsInput) -> list[Datum]:
    """Datums of equal join keys crossed; see the module docstring for outer_join."""
    if not inputs:
        raise ValueError("a join needs at least one input")
    keyed = [_keyed(inp, inp.join_on, "join_on") for inp in inputs]
    keys = sorted(set().union(*keyed))
    out: list[Datum] = []
    for key in keys:
        present = [i for i, k in enumerate(keyed) if key in k]
        if len(present) < len(inputs) and not any(inputs[i].outer_join for i in present):
            continue
        sets = [[(d,) for d in keyed[i][key]] for i in present]
        out.extend(cross(*sets))
    return out


def group(*inputs: PfsInput) -> list[Datum]:
    """One datum per group_by key, holding every matching path of every input."""
    if not inputs:
        raise ValueError("a group needs at least one input")
    keyed = [_keyed(inp, inp.group_by, "group_by") for inp in inputs]
    keys = sorted(set().union(*keyed))
    return [tuple(d for k in keyed for d in k.get(key, ())) for key in keys]


def datum_id(datum: Datum, salt: str) -> str:
    """The datum's hash: see the module docstring. Not over commit ids."""
    wire = [[d.name, d.repo, d.branch, d.path, [[k, c] for k, c in sorted(d.files)]] for d in datum]
    return short_hash(pack([DATUM_HASH_TAG, salt, wire])).hex()


def datum_location(datum: Datum) -> str:
    """The hash of where a datum is (names, repos, branches, paths), not of its
    contents: two datums at one location with different ids differ in content."""
    wire = [[d.name, d.repo, d.branch, d.path] for d in datum]
    return short_hash(pack([LOCATION_HASH_TAG, wire])).hex()


Outcome = Literal["success", "failed", "recovered"]


@dataclass(frozen=True)
class PastDatum:
    """What earlier jobs under the same salt know of one datum id.

    `outcome`: its latest outcome. `location`: its `datum_location`. `live`: its
    outputs are in the pipeline's latest output (it ran or was skipped in the
    last job and succeeded)."""

    outcome: Outcome
    location: str
    live: bool


@dataclass(frozen=True)
class PlannedDatum:
    id: str
    datum: Datum
    reason: str


@dataclass(frozen=True)
class RemovedDatum:
    id: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """to_run: run these (reason "new", "content changed", "failed last time",
    "recovered last time" or "reprocess"). skipped: reuse their outputs (reason
    "unchanged" when live, "unchanged since an older job" when the outputs must be
    copied from that job). removed: live outputs to delete (reason "content
    changed" or "input removed")."""

    to_run: list[PlannedDatum]
    skipped: list[PlannedDatum]
    removed: list[RemovedDatum]


def plan(
    previous: Mapping[str, PastDatum],
    current: Sequence[Datum],
    salt: str,
    reprocess_every_job: bool = False,
) -> Plan:
    """The plan of a job whose datums are `current`.

    `previous`: every earlier outcome of the pipeline under `salt` (not only the
    last job's: reverting an input then reuses an older result), plus the last
    job's live datums whatever their salt (so a new salt removes their outputs).
    "content changed" means a datum at the same location (inputs and paths) is
    known with another id: its contents, or the salt, differ. A datum listed
    twice (a union of equal inputs) is planned once."""
    to_run: list[PlannedDatum] = []
    skipped: list[PlannedDatum] = []
    seen: set[str] = set()
    locations: set[str] = set()
    known_locations = {p.location for p in previous.values()}
    for datum in current:
        did = datum_id(datum, salt)
        if did in seen:
            continue
        seen.add(did)
        location = datum_location(datum)
        locations.add(location)
        past = previous.get(did)
        if past is None:
            reason = "content changed" if location in known_locations else "new"
            to_run.append(PlannedDatum(did, datum, reason))
        elif past.outcome != "success":
            reason = "failed last time" if past.outcome == "failed" else "recovered last time"
            to_run.append(PlannedDatum(did, datum, reason))
        elif reprocess_every_job:
            to_run.append(PlannedDatum(did, datum, "reprocess"))
        else:
            reason = "unchanged" if past.live else "unchanged since an older job"
            skipped.append(PlannedDatum(did, datum, reason))
    removed = [
        RemovedDatum(did, "content changed" if p.location in locations else "input removed")
        for did, p in sorted(previous.items())
        if p.live and did not in seen
    ]
    return Plan(to_run, skipped, removed)
