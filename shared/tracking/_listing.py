"""The table query of a records listing: its period as row-key bounds, its filters as clauses.

The time range bounds the row keys (inverted times), so the service reads only the records of
that period; the other filters are conditions on those rows. Values are always parameters,
never formatted into the query.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ._keys import RECORDS_END, since_bound, until_bound

__all__ = ["listing_clauses", "period_clauses"]


def period_clauses(
    since: datetime | None, until: datetime | None
) -> tuple[list[str], dict[str, Any]]:
    """Row-key bounds of the records modified within a period (newest-first keys)."""
    clauses = ["RowKey lt @end"]
    params: dict[str, Any] = {"end": RECORDS_END}
    if since:
        clauses.append("RowKey le @since")
        params["since"] = since_bound(since)
    if until:
        clauses.append("RowKey ge @until")
        params["until"] = until_bound(until)
    return clauses, params


def listing_clauses(
    *,
    since: datetime | None,
    until: datetime | None,
    continuation: str | None,
    equal: Mapping[str, str | None],
    blob_prefix: str | None,
) -> tuple[list[str], dict[str, Any]]:
    """The clauses of one page of records.

    :keyword continuation: the row key the page starts after (decoded from its token).
    :keyword equal: properties that must equal their value (an empty value: no filter).
    :keyword blob_prefix: only blob paths starting with this text.
    """
    clauses, params = period_clauses(since, until)
    if continuation:
        clauses.append("RowKey gt @after")
        params["after"] = continuation
    for name, value in equal.items():
        if value:
            clauses.append(f"{name} eq @{name}")
            params[name] = value
    if blob_prefix:
        clauses.append("blob ge @prefix and blob lt @prefix_end")
        params["prefix"] = blob_prefix
        params["prefix_end"] = blob_prefix + "\uffff"  # the highest UTF-16 code unit
    return clauses, params
