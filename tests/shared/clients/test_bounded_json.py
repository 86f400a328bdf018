"""JSON from outside refused by its depth before the parser runs."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.clients.bounded_json import MAX_DEPTH, JsonTooDeepError, loads, nesting_depth

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:\n\u00e9'),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=30,
)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@settings(max_examples=300, derandomize=True, database=None)
@given(JSON_VALUES, st.booleans())
def test_the_depth_of_any_json_is_its_nesting_whatever_its_strings_hold(
    value: Any, ascii_only: bool
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert nesting_depth(text) == nesting_depth(text.encode()) == _depth(value)
    assert loads(text, max_depth=_depth(value)) == value


@pytest.mark.parametrize("form", [str, str.encode])
def test_one_level_over_the_limit_is_refused_naming_both(form: Callable[[str], Any]) -> None:
    at_limit = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert _depth(loads(form(at_limit))) == MAX_DEPTH
    with pytest.raises(JsonTooDeepError) as raised:
        loads(form("[" + at_limit + "]"))
    assert str(raised.value) == f"JSON nested {MAX_DEPTH + 1} levels deep, over the 64 read"
    assert isinstance(raised.value, ValueError)  # refused like any junk by every caller


def test_a_hostile_depth_never_reaches_the_parser() -> None:
    # Far past the recursion limit: refused by the scan, never a RecursionError (nor a parse
    # that nears the limit, which broke finalizers running meanwhile).
    deep = "[" * (sys.getrecursionlimit() * 100)
    with pytest.raises(JsonTooDeepError) as raised:
        loads(deep)
    assert raised.value.depth == len(deep)


def test_brackets_inside_strings_and_escaped_quotes_do_not_count() -> None:
    text = '{"a": "[[[[\\"[[[", "b": ["]]]]"]}'
    assert nesting_depth(text) == 2
    assert loads(text, max_depth=2) == {"a": '[[[["[[[', "b": ["]]]]"]}


def test_what_is_not_json_is_refused_as_before() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads("<html>")
    with pytest.raises(UnicodeDecodeError):
        loads(b'{"a": "\xff"}')
