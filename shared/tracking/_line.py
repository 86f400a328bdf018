"""The rows of the ordered lines: each line's head, and the files waiting in it.

A line is the files of one ordered route for one company. Its rows live in the files'
partition, so a file's turn is taken in the same transaction as its record's change:

=================================  ===========================================================
row key                            row
=================================  ===========================================================
``~l-<line hash>``                 the line's head: the file that had the last turn (its row
                                   key and blob); written conditional on its ETag, so of two
                                   workers handing the turn on, one wins
``~w-<line hash>-<record id>``     a file waiting in the line (its record key, blob, creation
                                   time); deleted when the file gets its turn
=================================  ===========================================================
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.data.tables import UpdateMode

from ._keys import PARTITION, modified_millis
from ._model import TrackedFile
from ._properties import finish, parse_time
from ._table import Operation, StatusTable, if_match
from ._writes import WRITE_ID, new_write_id

__all__ = ["LineHead", "Lines", "Waiter", "line_id", "order_of"]

_HEAD_PREFIX = "~l-"
_WAITING_PREFIX = "~w-"


def line_id(route: str, company: str | None) -> str:
    """The line of a route's files for one company, as records and answers name it."""
    return f"{route}/{company or '-'}"


def _line_hash(line: str) -> str:
    # Route names and F&O's company ids compare without case.
    return hashlib.sha256(line.lower().encode()).hexdigest()[:32]


def order_of(record: TrackedFile) -> tuple[datetime, str, int, str]:
    """A file's place in its line: its blob's creation time, then its name, then the version's
    Last-Modified (two versions of one path), then its record id; the same on every instance."""
    created = record.line_created or record.received_at
    return created, record.blob, modified_millis(record.row_key), record.record_id


@dataclass(frozen=True)
class LineHead:
    """The file that had a line's last turn; ``head`` None: none yet (no row, ``etag`` "")."""

    line: str
    head: str | None = None
    head_blob: str | None = None
    etag: str = ""


@dataclass(frozen=True)
class Waiter:
    """A file waiting in a line (its member row)."""

    record_row_key: str
    record_id: str
    blob: str
    created: datetime

    @property
    def order(self) -> tuple[datetime, str, int, str]:
        """Its place in the line (as :func:`order_of` gives it for the record)."""
        return self.created, self.blob, modified_millis(self.record_row_key), self.record_id


class Lines:
    """Reads the ordered lines' rows, and builds their writes for a record's transaction.

    :param table: the status table.
    """

    def __init__(self, table: StatusTable, *, clock: Callable[[], datetime]) -> None:
        self._table = table
        self._clock = clock

    def head(self, line: str) -> LineHead:
        """The line's head (one point read)."""
        row = self._table.get(_HEAD_PREFIX + _line_hash(line))
        if row is None:
            return LineHead(line)
        return LineHead(line, row.get("head"), row.get("head_blob"), row.metadata["etag"])

    def waiting(self, line: str) -> list[Waiter]:
        """The files waiting in the line, first in line first (one range read)."""
        prefix = f"{_WAITING_PREFIX}{_line_hash(line)}-"
        rows = self._table.query(
            ["RowKey gt @first", "RowKey lt @end"], {"first": prefix, "end": prefix + "~"}
        )
        found = [
            Waiter(
                row["record_row_key"],
                row["RowKey"][len(prefix) :],
                row["blob"],
                parse_time(row["created"]) or datetime.now(UTC),
            )
            for row in rows
        ]
        return sorted(found, key=lambda waiter: waiter.order)

    def drop(self, line: str, waiter: Waiter) -> None:
        """Delete a waiting row whose record is no longer waiting."""
        self._table.delete(f"{_WAITING_PREFIX}{_line_hash(line)}-{waiter.record_id}")

    @staticmethod
    def join(record: TrackedFile) -> Operation:
        """The write that puts a record in its line's waiting files."""
        assert record.line and record.line_created
        entity = {
            "PartitionKey": PARTITION,
            "RowKey": _waiter_key(record),
            "record_row_key": record.row_key,
            "blob": record.blob,
            "created": record.line_created.astimezone(UTC),
        }
        return "upsert", finish(entity), {}

    @staticmethod
    def leave(record: TrackedFile) -> Operation:
        """The write that takes a record out of its line's waiting files."""
        return "delete", {"PartitionKey": PARTITION, "RowKey": _waiter_key(record)}, {}

    def take_turn(self, head: LineHead, record: TrackedFile) -> Operation:
        """The write that makes ``record`` the line's head, only if the head is still
        ``head`` as read (a create when the line has no head row yet)."""
        entity: dict[str, Any] = finish(
            {
                "PartitionKey": PARTITION,
                "RowKey": _HEAD_PREFIX + _line_hash(head.line),
                "line": head.line,
                "head": record.row_key,
                "head_blob": record.blob,
                "turn_at": self._clock().astimezone(UTC),
                WRITE_ID: new_write_id(),
            }
        )
        if not head.etag:
            return "create", entity, {}
        return "update", entity, {"mode": UpdateMode.REPLACE, **if_match(head.etag)}


def _waiter_key(record: TrackedFile) -> str:
    assert record.line
    return f"{_WAITING_PREFIX}{_line_hash(record.line)}-{record.record_id}"
