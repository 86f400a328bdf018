"""Blob names: the longest and deepest names accepted still fit Azure once archived."""

from __future__ import annotations

import pytest

from shared.config import MAX_BLOB_NAME_CHARS, MAX_BLOB_NAME_SEGMENTS, RejectReason, RoutingError
from shared.tracking import TrackingState
from tests.shared.config.route_samples import route_dict as _route
from tests.shared.config.route_samples import table_of as _table


def test_the_archive_name_of_the_longest_accepted_name_fits_azure() -> None:
    longest_state = max(len(state.value) for state in TrackingState if state.is_terminal)
    repeat_suffix = len(".") + 12
    assert MAX_BLOB_NAME_CHARS + longest_state + len("/") + repeat_suffix == 1024
    assert MAX_BLOB_NAME_SEGMENTS + 1 == 254


def test_names_up_to_the_limits_are_accepted() -> None:
    table = _table(_route(prefix="in/"))
    folders = "/".join(["f"] * (MAX_BLOB_NAME_SEGMENTS - 2))
    deepest = f"in/{folders}/a.xml"
    assert len(deepest.split("/")) == MAX_BLOB_NAME_SEGMENTS
    assert table.resolve(deepest).route.name == "customers"
    longest = "in/" + "d" * 200 + "/" + "e" * 200 + "/" + "g" * 200 + "/" + "h" * 200 + "/"
    longest += "a" * (MAX_BLOB_NAME_CHARS - len(longest) - 4) + ".xml"
    assert len(longest) == MAX_BLOB_NAME_CHARS
    assert table.resolve(longest).route.name == "customers"


def test_characters_beyond_the_basic_plane_count_twice() -> None:
    table = _table(_route(prefix="in/"))
    name = "in/" + "d" * 200 + "/" + "e" * 200 + "/" + "g" * 200 + "/"
    name += "\U0001f600" * ((MAX_BLOB_NAME_CHARS - len(name) - 4) // 2 + 1) + ".xml"
    assert len(name) < MAX_BLOB_NAME_CHARS
    with pytest.raises(RoutingError) as caught:
        table.resolve(name)
    assert caught.value.reason is RejectReason.NAME_TOO_LONG


def test_a_name_holding_a_lone_surrogate_is_a_bad_name() -> None:
    # Found by test_routes.py's hostile names: counting its UTF-16 length raised
    # UnicodeEncodeError, an exception where a rejection was due.
    with pytest.raises(RoutingError) as caught:
        _table(_route(prefix="in/")).resolve("in/a\ud800.xml")
    assert caught.value.reason is RejectReason.BAD_NAME
    assert str(caught.value).startswith(
        "blob name 'in/a\\ud800.xml' holds a lone surrogate (U+D800-U+DFFF), which is not a "
        "character; F&O gets the file name"
    )
