"""Hostile input for the parsers' property tests (Hypothesis): texts, JSON and nesting that an
attacker, a broken client or a lying uploader may send, and the settings the tests run with.

The tests are bounded and deterministic: a fixed number of examples, derandomized, no example
database. ``FUZZ_HUNT=<n>`` runs each with ``n`` times the examples, randomized, to hunt for
new crashes (each one found becomes an explicit ``@example``).
"""

from __future__ import annotations

import base64
import os
import string
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = [
    "DEEP_JSON",
    "HOSTILE",
    "JSON_VALUES",
    "TEXTS",
    "hostile_settings",
    "shown_in",
    "token_of",
    "weighted",
]

_HUNT = int(os.environ.get("FUZZ_HUNT", "0") or 0)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, drawn in proportion to its weight (``st.one_of`` flattens nested
    choices into equal branches, so repeating a strategy there does not weight it)."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(
        lambda chosen: chosen
    )


def hostile_settings(max_examples: int) -> settings:
    """Settings of a hostile-input test: ``max_examples`` (times ``FUZZ_HUNT`` when hunting),
    derandomized unless hunting, no database, no deadline (a long text takes its time)."""
    return settings(
        max_examples=max_examples * max(_HUNT, 1),
        derandomize=not _HUNT,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )


HOSTILE = hostile_settings(200)
"""The default: 200 examples, a few seconds for a pure parser."""

# Pieces that broke parsers somewhere: control and format characters, lone surrogates,
# digits int() reads but ASCII does not, escapes, traversal, JSON's own punctuation.
_PIECES = st.sampled_from(
    [
        "",
        " ",
        "\t",
        ".",
        "..",
        "/",
        "\\",
        "%",
        "%00",
        "%2e%2e",
        "%2F",
        "%ZZ",
        "%u0000",
        "\x00",
        "\x1f",
        "\x7f",
        "\x85",
        "\u2028",
        "\u200b",
        "\ufeff",
        "\ud800",
        "\udfff",
        "\U0001f600",
        "é",
        "²",
        "٣",
        "Z",
        "z",
        "T",
        "=",
        "-",
        "+",
        "{",
        "}",
        "[",
        "]",
        '"',
        "'",
        "''",
        "(",
        ")",
        "@person",
        " eq ",
        " or ",
        "null",
        "true",
        "1e999",
        "NaN",
        "-0",
        "9" * 5000,
        "aad",
        "USMF",
        "{company}",
        "0d6a1c0e-5f4b-4c3e-9e2a-1b7f3c5d8a01",
        "9999-12-31T23:59:59",
        "0001-01-01T00:00:00",
        "+23:59",
    ]
)
# Every code point, lone surrogates included (Hypothesis leaves them out unless asked).
_ANY_CHARACTER = st.characters(exclude_categories=())
_SHORT = st.one_of(
    _PIECES,
    st.text(_ANY_CHARACTER, max_size=12),
    st.text(string.printable, max_size=12),
)
_JOINED = st.lists(_SHORT, max_size=12).map("".join)
# Overlong: one piece repeated to thousands of characters and more (cheap to generate).
_OVERLONG = st.builds(
    lambda piece, times: (piece or "a") * times,
    _SHORT,
    st.sampled_from([2, 50, 300, 5_000, 70_000]),
)
TEXTS = weighted((3, _JOINED), (1, _OVERLONG))
"""Texts of any code points and hostile pieces; one in four an overlong repeat."""

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(),
    TEXTS,
)
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_SHORT, inner, max_size=5),
    max_leaves=12,
)
"""JSON-shaped values of every type (floats include NaN and infinities), with hostile texts."""

DEEP_JSON = st.builds(
    lambda opener, depth: opener * depth,
    st.sampled_from(["[", '{"a":', '[{"typ":', '{"value":']),
    st.integers(1, 60_000),
)
"""The opening of a JSON document nested up to 60,000 deep (past any recursion limit)."""


def shown_in(value: str, text: str) -> bool:
    """True when ``value`` appears in ``text`` as it stands or as its repr shows it."""
    return value in text or repr(value)[1:-1] in text


def token_of(key: str) -> str:
    """The continuation token of any text as the codec writes one (a lone surrogate kept, as
    UTF-8 would hold it), for tokens of keys no listing issues."""
    return base64.urlsafe_b64encode(key.encode("utf-8", "surrogatepass")).decode().rstrip("=")
