"""Pachyderm glob semantics over object keys: which paths of a commit are datums.

A glob is written with a leading "/" (`/*`, `/**`, `/dir/*.csv`); loxo keys have
none. A glob matches *paths*, and a path is a file or a directory: the paths of a
key `a/b/c` are `/a`, `/a/b` (its directories) and `/a/b/c` (itself). A matched
path covers every key equal to it or under it, so over the keys `a/x`, `a/y`, `b`
the glob `/*` matches `/a` (covering `a/x` and `a/y`) and `/b`. The glob `/` is
the whole commit as one datum (none when the commit is empty).

Syntax: `*` any run of characters within one segment; `**` any run of
characters, "/" included (so it spans segments); `?` one character but "/";
`[abc]`, `[a-z]`, `[!a]` one character of (or not of) a class, never "/";
`(...)` a capture group (numbered by its opening parenthesis, as in `$1` of
join_on and group_by); `\\x` the character x itself. `{`, `}`, `|` and a lone
`]` are refused (Pachyderm's alternatives are not supported yet), so that adding
them later changes no existing glob's meaning.

Without `**` every matched path has the same number of segments (`depth`), so
matched paths never nest and each key belongs to at most one datum
(`datum_of`). With `**`, paths of any depth match and may nest (`/**` matches
`/a` and `/a/x`): a key may then belong to several datums (`datums_of`), as in
Pachyderm.

Costs: `datum_of` is O(len(key)) (one regex match on the key's first `depth`
segments), so a planner maps a changed key to its datum without listing the
repository; `datums_of` with `**` tries every directory of the key, O(depth)
matches. `prefix` is the literal text every covered key starts with, so a
caller lists or seeks only under it. `match` is one pass over the keys given.
Globs are compiled to Python regular expressions; several `**`/`*` in one glob
can backtrack polynomially in the key length (keys are at most 1024 bytes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_GLOB_LENGTH = 1024


class GlobError(ValueError):
    """A glob that cannot be compiled, or a question it cannot answer."""


@dataclass(frozen=True)
class Glob:
    """A compiled glob. `prefix`: the literal start of every covered key.
    `depth`: the number of segments of every matched path (0 for `/`), or None
    when the glob has `**`. `groups`: the number of capture groups."""

    pattern: str
    prefix: str
    depth: int | None
    groups: int
    regex: re.Pattern[str] | None  # over the path without its leading "/"; None for "/"

    @property
    def nested(self) -> bool:
        """Whether matched paths may nest (the glob has `**`)."""
        return self.depth is None

    def matches(self, path: str) -> bool:
        """Whether a path ("/"-led, as in `match`'s result) is matched."""
        if self.regex is None:
            return path == "/"
        return path.startswith("/") and self.regex.fullmatch(path, 1) is not None

    def captures(self, path: str) -> tuple[str, ...] | None:
        """The text each capture group matched in `path`, or None when the glob
        does not match it."""
        if self.regex is None:
            return () if path == "/" else None
        if not path.startswith("/"):
            return None
        m = self.regex.fullmatch(path, 1)
        if m is None:
            return None
        return tuple(g or "" for g in m.groups())

    def datums_of(self, key: str) -> tuple[str, ...]:
        """Every matched path covering `key`, outermost first."""
        if self.regex is None:
            return ("/",)
        if not key.startswith(self.prefix):
            return ()
        path = "/" + key
        if self.depth is not None:
            cut = _nth_slash(path, self.depth + 1)
            candidate = path if cut < 0 else path[:cut]
            if candidate.count("/") != self.depth:
                return ()
            return (candidate,) if self.regex.fullmatch(candidate, 1) else ()
        found = [path[:i] for i in range(1, len(path)) if path[i] == "/"]
        found.append(path)
        return tuple(p for p in found if self.regex.fullmatch(p, 1))

    def datum_of(self, key: str) -> str | None:
        """The one datum path covering `key`, or None. Refused for a glob with
        `**`, whose datums may nest: use `datums_of`."""
        if self.depth is None:
            raise GlobError(
                f"glob {self.pattern!r} has '**', so a key may be in several datums: use datums_of"
            )
        found = self.datums_of(key)
        return found[0] if found else None

    def match(self, keys: Iterable[str]) -> dict[str, list[str]]:
        """Each matched path (sorted) -> the keys it covers (sorted)."""
        out: dict[str, list[str]] = {}
        for key in sorted(keys):
            for path in self.datums_of(key):
                out.setdefault(path, []).append(key)
        return {p: out[p] for p in sorted(out)}


def _nth_slash(text: str, n: int) -> int:
    """The index of the n-th "/" in text (1-based), or -1."""
    i = -1
    for _ in range(n):
        i = text.find("/", i + 1)
        if i < 0:
            return -1
    return i


def compile_glob(pattern: str) -> Glob:
    """Compile a glob; GlobError says what is wrong with a bad one."""
    if not isinstance(pattern, str) or not pattern.startswith("/"):
        raise GlobError(f"glob {pattern!r} must start with '/'")
    if len(pattern) > MAX_GLOB_LENGTH:
        raise GlobError(f"glob is longer than {MAX_GLOB_LENGTH} characters")
    if pattern == "/":
        return Glob(pattern, prefix="", depth=0, groups=0, regex=None)
    body = pattern[1:]
    n = len(body)
    parts: list[str] = []
    prefix: list[str] = []
    literal = True  # still in the literal start
    slashes = 0
    nested = False
    groups = 0
    open_at: list[int] = []
    i = 0

    def lit(c: str) -> None:
        nonlocal slashes
        if c == "/":
            slashes += 1
        if literal:
            prefix.append(c)
        parts.append(re.escape(c))

    while i < n:
        c = body[i]
        if c == "\\":
            if i + 1 >= n:
                raise GlobError(f"glob {pattern!r} ends with a lone '\\'")
            lit(body[i + 1])
            i += 2
            continue
        if c == "*":
            j = i
            while j < n and body[j] == "*":
                j += 1
            if j - i >= 2:
                nested = True
                parts.append(".*")
            else:
                parts.append("[^/]*")
            literal = False
            i = j
            continue
        if c == "?":
            parts.append("[^/]")
            literal = False
        elif c == "[":
            text, i = _parse_class(pattern, body, i)
            parts.append(text)
            literal = False
            continue
        elif c == "(":
            groups += 1
            open_at.append(i)
            parts.append("(")
            literal = False
        elif c == ")":
            if not open_at:
                raise GlobError(f"glob {pattern!r}: ')' at character {i + 2} closes no group")
            open_at.pop()
            parts.append(")")
        elif c in "{}|]":
            raise GlobError(
                f"glob {pattern!r}: {c!r} at character {i + 2} is not supported "
                f"(write '\\{c}' for the character itself)"
            )
        else:
            lit(c)
        i += 1
    if open_at:
        raise GlobError(f"glob {pattern!r}: '(' at character {open_at[-1] + 2} is never closed")
    return Glob(
        pattern,
        prefix="".join(prefix),
        depth=None if nested else slashes + 1,
        groups=groups,
        regex=re.compile("".join(parts), re.DOTALL),
    )


def _parse_class(pattern: str, body: str, start: int) -> tuple[str, int]:
    """Parse `[...]` at body[start]; return its regex and the index after it."""
    n = len(body)

    def char(i: int) -> tuple[str, int]:
        """The class character at i (an escape resolved) and the index after it."""
        if i >= n:
            raise GlobError(f"glob {pattern!r}: '[' at character {start + 2} is never closed")
        if body[i] == "\\":
            if i + 1 >= n:
                raise GlobError(f"glob {pattern!r} ends with a lone '\\'")
            c, i = body[i + 1], i + 2
        else:
            c, i = body[i], i + 1
        if c == "/":
            raise GlobError(f"glob {pattern!r}: a class cannot match '/'")
        return c, i

    i = start + 1
    negate = i < n and body[i] == "!"
    if negate:
        i += 1
    items: list[str] = []
    while True:
        if i >= n:
            raise GlobError(f"glob {pattern!r}: '[' at character {start + 2} is never closed")
        if body[i] == "]":
            i += 1
            break
        lo, i = char(i)
        if i + 1 < n and body[i] == "-" and body[i + 1] != "]":
            hi, i = char(i + 1)
            if lo > hi:
                raise GlobError(f"glob {pattern!r}: the range {lo}-{hi} is empty")
            items.append(f"{re.escape(lo)}-{re.escape(hi)}")
        else:
            items.append(re.escape(lo) if lo != "-" else r"\-")
    if not items:
        raise GlobError(f"glob {pattern!r}: the class at character {start + 2} is empty")
    text = "".join(items)
    return (f"[^{text}/]" if negate else f"[{text}]"), i


def match(glob: str | Glob, keys: Iterable[str]) -> dict[str, list[str]]:
    """Each path matched by `glob` over `keys` -> the keys it covers."""
    compiled = glob if isinstance(glob, Glob) else compile_glob(glob)
    return compiled.match(keys)
