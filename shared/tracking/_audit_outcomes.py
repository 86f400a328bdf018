"""The outcome rows of the audit trail, folded with their action's row into one entry.

An action's outcome is not written on its row: each outcome it reaches is a row of its own,
created once, keyed ``<action's row key>-<outcome>``. That key sorts right after the action's
row and before the next action's, so one range query reads an action with its outcomes, and a
listing meets them next to each other. The furthest outcome wins; the targets each outcome
made are added in the order outcomes are reached. An action's row that holds an outcome itself
(written so at once, or by a version that rewrote it) is read as its first outcome.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

from ._audit_model import AuditEntry, AuditOutcome
from ._audit_rows import AUDIT_PARTITION, audit_from, filter_fields, is_audit_key
from ._fit import LIST_UNITS, Bounded, dumps, keep
from ._properties import finish, parse_time

__all__ = [
    "entry_key_of",
    "entry_rows",
    "fold",
    "outcome_entity",
    "outcome_key",
    "rows_end",
    "with_outcome",
]

_SEPARATOR = "-"
_PAST_OUTCOMES = "-~"
"""After every outcome row of an action (an outcome's name is lower-case letters)."""


def outcome_key(row_key: str, outcome: AuditOutcome) -> str:
    """The row of one outcome of the action ``row_key``."""
    return f"{row_key}{_SEPARATOR}{outcome.value}"


def entry_key_of(row_key: str) -> str:
    """The action's row key of an action's row or of one of its outcome rows."""
    return _SEPARATOR.join(row_key.split(_SEPARATOR, 2)[:2])


def rows_end(row_key: str) -> str:
    """A key after every outcome row of the action ``row_key``, before the next action's."""
    return row_key + _PAST_OUTCOMES


def outcome_entity(
    entry: AuditEntry,
    outcome: AuditOutcome,
    *,
    at: datetime,
    detail: str | None,
    made: Sequence[str],
) -> dict[str, Any]:
    """The row of ``entry`` reaching ``outcome``, carrying the entry's filter columns too, so
    a listing filtered by person or action returns it with its action's row."""
    new = [target for target in made if target not in entry.targets]
    return finish(
        {
            "PartitionKey": AUDIT_PARTITION,
            "RowKey": outcome_key(entry.row_key, outcome),
            **filter_fields(entry),
            "outcome": outcome.value,
            "detail": detail,
            "completed_at": at.astimezone(UTC),
            "made": Bounded(dumps(keep(new, limit=LIST_UNITS))) if new else None,
        }
    )


def _outcome_of(row: Mapping[str, Any]) -> AuditOutcome:
    return AuditOutcome(row.get("outcome", AuditOutcome.REQUESTED.value))


def fold(rows: Sequence[Mapping[str, Any]]) -> AuditEntry | None:
    """The entry of an action's row followed by its outcome rows (in any order); None when
    the action's row is not among them (its outcome rows outlived it)."""
    heads = [row for row in rows if is_audit_key(row["RowKey"])]
    if not heads:
        return None
    entry = audit_from(heads[0])
    outcomes = sorted(
        (row for row in rows if row is not heads[0]), key=lambda r: _outcome_of(r).rank
    )
    for row in outcomes:
        entry = with_outcome(entry, row)
    return entry


def with_outcome(entry: AuditEntry, row: Mapping[str, Any]) -> AuditEntry:
    """``entry`` after one of its outcome rows: the targets it made added, its outcome taken
    when it is further than the entry's."""
    made = json.loads(row.get("made") or "[]")
    targets = (*entry.targets, *(t for t in made if t not in entry.targets))
    outcome = _outcome_of(row)
    if outcome.rank <= entry.outcome.rank:
        return replace(entry, targets=targets)
    return replace(
        entry,
        targets=targets,
        outcome=outcome,
        detail=row.get("detail"),
        completed_at=parse_time(row.get("completed_at")),
    )


def entry_rows(rows: Iterable[Any]) -> Iterator[list[Any]]:
    """Rows in key order, grouped per action: its row, then its outcome rows (read lazily, so
    a group is whole once the next one starts)."""
    for _, group in groupby(rows, key=lambda row: entry_key_of(row["RowKey"])):
        yield list(group)
