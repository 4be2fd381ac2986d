"""Tests for versioning.pipelines.globs: Pachyderm globs over object keys.

The reference model is brute force: every path of every key (its directories and
itself) is tested with a small backtracking matcher written independently of the
regex compiler, and covers the keys equal to it or under it."""

from __future__ import annotations

import fnmatch
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from versioning.pipelines.globs import GlobError, compile_glob, match

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOKENS = ["a", "b", "/", "*", "**", "?", "[ab]", "[!a]", "[a-b]", "\\*"]


def ref_matches(pattern: str, path: str) -> bool:
    """Whether `pattern` matches `path` (both "/"-led); parentheses ignored."""
    if pattern == "/":
        return path == "/"
    p, s = pattern[1:], path[1:]

    @cache
    def go(i: int, j: int) -> bool:
        if i == len(p):
            return j == len(s)
        c = p[i]
        if c in "()":
            return go(i + 1, j)
        if c == "\\":
            return j < len(s) and s[j] == p[i + 1] and go(i + 2, j + 1)
        if c == "*":
            k = i
            while k < len(p) and p[k] == "*":
                k += 1
            if k - i >= 2:
                return any(go(k, t) for t in range(j, len(s) + 1))
            return any(go(k, t) for t in range(j, len(s) + 1) if "/" not in s[j:t])
        if c == "?":
            return j < len(s) and s[j] != "/" and go(i + 1, j + 1)
        if c == "[":
            end = p.index("]", i + 2)
            return (
                j < len(s)
                and s[j] != "/"
                and fnmatch.fnmatchcase(s[j], p[i : end + 1])
                and go(end + 1, j + 1)
            )
        return j < len(s) and s[j] == c and go(i + 1, j + 1)

    return go(0, 0)


def ref_match(pattern: str, keys: list[str]) -> dict[str, list[str]]:
    if pattern == "/":
        return {"/": sorted(keys)} if keys else {}
    candidates = set()
    for key in keys:
        path = "/" + key
        candidates.update(path[:i] for i in range(1, len(path)) if path[i] == "/")
        candidates.add(path)
    out = {}
    for c in sorted(candidates):
        if ref_matches(pattern, c):
            out[c] = sorted(k for k in keys if "/" + k == c or ("/" + k).startswith(c + "/"))
    return out


@st.composite
def patterns(draw: st.DrawFn) -> str:
    tokens = draw(st.lists(st.sampled_from(TOKENS), max_size=6))
    if tokens and draw(st.booleans()):
        i = draw(st.integers(0, len(tokens)))
        j = draw(st.integers(i, len(tokens)))
        tokens = [*tokens[:i], "(", *tokens[i:j], ")", *tokens[j:]]
    return "/" + "".join(tokens)


keys_st = st.lists(st.text(alphabet="ab/*", min_size=1, max_size=6), max_size=8, unique=True)


@SETTINGS
@given(patterns(), keys_st)
def test_match_agrees_with_the_brute_force_model(pattern: str, keys: list[str]) -> None:
    assert match(pattern, keys) == ref_match(pattern, keys)


@SETTINGS
@given(patterns(), keys_st)
def test_segment_wise_fnmatch_agrees_without_doublestar(pattern: str, keys: list[str]) -> None:
    """Another oracle for globs without `**` or escapes: same number of segments,
    each matched by fnmatch."""
    plain = pattern.replace("(", "").replace(")", "")
    if "**" in plain or "\\" in plain or pattern == "/":
        return
    glob = compile_glob(pattern)
    segs = plain[1:].split("/")
    for path in ref_match("/**", keys):
        parts = path[1:].split("/")
        expected = len(parts) == len(segs) and all(
            "/" not in x and fnmatch.fnmatchcase(x, g) for x, g in zip(parts, segs, strict=True)
        )
        assert glob.matches(path) == expected, path


@SETTINGS
@given(patterns(), keys_st)
def test_datums_of_agrees_with_match_for_every_key(pattern: str, keys: list[str]) -> None:
    glob = compile_glob(pattern)
    matched = glob.match(keys)
    for key in keys:
        expected = tuple(sorted((p for p, ks in matched.items() if key in ks), key=len))
        assert glob.datums_of(key) == expected
        assert key.startswith(glob.prefix) or not expected
        if glob.nested:
            with pytest.raises(GlobError, match="datums_of"):
                glob.datum_of(key)
        else:
            assert len(expected) <= 1
            assert glob.datum_of(key) == (expected[0] if expected else None)


def test_the_pachyderm_examples() -> None:
    keys = ["a/x", "a/y", "b", "dir/1.csv", "dir/2.txt", "dir/sub/3.csv"]
    assert match("/*", keys) == {
        "/a": ["a/x", "a/y"],
        "/b": ["b"],
        "/dir": ["dir/1.csv", "dir/2.txt", "dir/sub/3.csv"],
    }
    assert match("/", keys) == {"/": sorted(keys)}
    assert match("/", []) == {}
    assert match("/dir/*.csv", keys) == {"/dir/1.csv": ["dir/1.csv"]}
    assert match("/dir/**.csv", keys) == {
        "/dir/1.csv": ["dir/1.csv"],
        "/dir/sub/3.csv": ["dir/sub/3.csv"],
    }
    assert list(match("/**", ["a/x", "b"])) == ["/a", "/a/x", "/b"]
    assert match("/*/*", keys) == {
        "/a/x": ["a/x"],
        "/a/y": ["a/y"],
        "/dir/1.csv": ["dir/1.csv"],
        "/dir/2.txt": ["dir/2.txt"],
        "/dir/sub": ["dir/sub/3.csv"],
    }


@pytest.mark.parametrize(
    ("pattern", "prefix", "depth"),
    [
        ("/", "", 0),
        ("/*", "", 1),
        ("/**", "", None),
        ("/dir/*.csv", "dir/", 2),
        ("/dir/sub/x?", "dir/sub/x", 3),
        ("/a/b", "a/b", 2),
        ("/a\\*b/(*)", "a*b/", 2),
        ("/data[1]/*", "data", 2),
    ],
)
def test_prefix_and_depth(pattern: str, prefix: str, depth: int | None) -> None:
    glob = compile_glob(pattern)
    assert (glob.prefix, glob.depth) == (prefix, depth)


@pytest.mark.parametrize(
    ("pattern", "path", "captures"),
    [
        ("/(*)/(*).csv", "/x/y.csv", ("x", "y")),
        ("/(*)-(?).csv", "/abc-d.csv", ("abc", "d")),
        ("/dir/(**)", "/dir/a/b", ("a/b",)),
        ("/((a)*)", "/ab", ("ab", "a")),
        ("/([ab])x", "/bx", ("b",)),
        ("/()*", "/q", ("",)),
        ("/*", "/q", ()),
        ("/", "/", ()),
        ("/(*)/(*).csv", "/x/y.txt", None),
        ("/(*)", "/x/y", None),
        ("/(*)", "x", None),
        ("/", "/x", None),
    ],
)
def test_captures(pattern: str, path: str, captures: tuple[str, ...] | None) -> None:
    assert compile_glob(pattern).captures(path) == captures


def test_special_characters_in_keys() -> None:
    keys = ["a b/x", "q\nr", "(x)", "é/ü", "a//b", "d/"]
    assert match("/*", keys) == {
        "/(x)": ["(x)"],
        "/a": ["a//b"],
        "/a b": ["a b/x"],
        "/d": ["d/"],
        "/q\nr": ["q\nr"],
        "/é": ["é/ü"],
    }
    assert match("/\\(*\\)", keys) == {"/(x)": ["(x)"]}
    assert match("/a/", keys) == {"/a/": ["a//b"]}
    assert match("/d/", keys) == {"/d/": ["d/"]}


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "must start with '/'"),
        ("*.csv", "must start with '/'"),
        ("/[ab", "never closed"),
        ("/[]", "is empty"),
        ("/[z-a]", "range z-a is empty"),
        ("/[/]", "cannot match '/'"),
        ("/(*", "never closed"),
        ("/*)", "closes no group"),
        ("/{a,b}", "not supported"),
        ("/a|b", "not supported"),
        ("/a]", "not supported"),
        ("/a\\", "lone"),
        ("/" + "a" * 2000, "longer than"),
    ],
)
def test_syntax_errors(pattern: str, message: str) -> None:
    with pytest.raises(GlobError, match=message) as info:
        compile_glob(pattern)
    assert isinstance(info.value, ValueError)
