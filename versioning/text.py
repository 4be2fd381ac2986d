"""Counted nouns and capped name lists, for messages in domain words
("1 path changed", "its branches are: dev, main and 3 more")."""

from __future__ import annotations

from collections.abc import Sequence

#: How many names a message lists before it says "and N more".
LISTED_NAMES = 20


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`n noun` with the noun's plural (noun + "s", or `nouns`) unless n is 1."""
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"


def some_names(names: Sequence[str], limit: int = LISTED_NAMES) -> str:
    """The first `limit` names, comma-separated, then "and N more"."""
    shown = ", ".join(names[:limit])
    rest = len(names) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown
