"""Route JSON: what a route list never holds is refused, what it may hold is read."""

from __future__ import annotations

import time

import pytest

from shared.config import ImportRoutes, RouteConfigError
from tests.shared.config.route_samples import route_dict as _route
from tests.shared.config.route_samples import table_of as _table


def test_brackets_inside_json_strings_do_not_count_as_nesting() -> None:
    table = _table(_route(entity='[[[[[[[[[[[[ {{{{{{{{{{{{ \\" ]]]'))
    assert next(iter(table)).entity == '[[[[[[[[[[[[ {{{{{{{{{{{{ \\" ]]]'


def test_an_object_of_many_keys_is_read_in_one_pass() -> None:
    keys = ", ".join(f'"k{index}": 1' for index in range(50_000))
    started = time.perf_counter()
    with pytest.raises(RouteConfigError) as caught:
        ImportRoutes.from_json(f'[{{{keys}, "k49999": 2}}]')
    # Counting each key's copies took 30 s for these 50,000 keys; one pass takes milliseconds.
    assert time.perf_counter() - started < 3
    assert caught.value.problems == (
        "D365_ROUTES: an object repeats the key 'k49999', and only one would count; expected a "
        "JSON list of route objects",
    )
