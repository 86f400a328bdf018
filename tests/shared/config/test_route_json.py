"""Route JSON: what a route list never holds is refused, what it may hold is read."""

from __future__ import annotations

from tests.shared.config.route_samples import route_dict as _route
from tests.shared.config.route_samples import table_of as _table


def test_brackets_inside_json_strings_do_not_count_as_nesting() -> None:
    table = _table(_route(entity='[[[[[[[[[[[[ {{{{{{{{{{{{ \\" ]]]'))
    assert next(iter(table)).entity == '[[[[[[[[[[[[ {{{{{{{{{{{{ \\" ]]]'
