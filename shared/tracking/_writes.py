"""Conditional writes that recognise their own: the one way every row of the status model is
written when two writers may race for it (file records, export records, leases).

Each such write carries a fresh ``write_id``. When its answer is lost (a connection reset
after the service applied it, a server error, or the SDK's own retry of a write that landed
meeting 409 "exists" or 412 "changed"), the row is read back: our ``write_id`` means the write
landed and is ours; the row as it was before (absent for a create, the ETag the write was
conditional on for a replace) means it did not land, and it is sent again; anything else is
another writer's. Without this, a writer whose answer was lost takes its own row for a
competitor's: an export route skipped until its lease ends, a message "left to another
writer" until F&O offers it again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from ._table import StatusTable

__all__ = [
    "WRITE_ID",
    "Written",
    "insert_own",
    "new_write_id",
    "read_back_needed",
    "replace_own",
    "write_own",
]

_LOGGER = logging.getLogger(__name__)

WRITE_ID = "write_id"
"""The property naming the write that last wrote a row."""
_ATTEMPTS = 3
_CREATE_CONFLICTS = frozenset({409})
_REPLACE_CONFLICTS = frozenset({404, 409, 412})


@dataclass(frozen=True)
class Written:
    """How a conditional write ended.

    :ivar ours: our write landed (its answer said so, or the row read back carries our id).
    :ivar etag: the row's ETag after our write; empty when it is another writer's.
    :ivar row: the row as read back after a conflict or a lost answer; None when the write
        answered, or the row is gone.
    """

    ours: bool
    etag: str
    row: Any | None = None


def new_write_id() -> str:
    """A fresh id for one write."""
    return uuid.uuid4().hex


def status_of(exc: HttpResponseError) -> int | None:
    """The HTTP status of a failed call (a transaction's error keeps it on the response)."""
    return exc.status_code or getattr(exc.response, "status_code", None)


def _uncertain(exc: Exception) -> bool:
    """The call may or may not have been applied (no answer, or a server error)."""
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return True
    return isinstance(exc, HttpResponseError) and (status_of(exc) or 0) >= 500


def read_back_needed(exc: Exception, conflicts: frozenset[int]) -> bool:
    """The write lost a race, or may have landed with its answer lost: reading the row back
    tells which."""
    if isinstance(exc, HttpResponseError) and status_of(exc) in conflicts:
        return True
    return _uncertain(exc)


def write_own(
    table: StatusTable,
    row_key: str,
    write_id: str,
    send: Callable[[], str],
    *,
    if_match: str | None,
) -> Written:
    """Send a conditional write of row ``row_key`` carrying ``write_id``, and tell whose it is.

    :param send: makes the call once; returns the row's new ETag.
    :keyword if_match: the ETag the write is conditional on; None for a create.
    :raises AzureError: the call failed otherwise (the row is left as it was), or its outcome
        stayed unknown after a few attempts.
    """
    conflicts = _CREATE_CONFLICTS if if_match is None else _REPLACE_CONFLICTS
    failure: AzureError | None = None
    for _ in range(_ATTEMPTS):
        try:
            return Written(ours=True, etag=send())
        except AzureError as exc:
            if not read_back_needed(exc, conflicts):
                raise
            failure = exc
        row = table.get(row_key)
        etag = "" if row is None else row.metadata["etag"]
        if row is not None and row.get(WRITE_ID) == write_id:
            _LOGGER.info(
                "write landed though its answer was lost partition=%s row=%s",
                table.partition,
                row_key,
            )
            return Written(ours=True, etag=etag, row=row)
        unchanged = row is None if if_match is None else etag == if_match
        if not unchanged:
            return Written(ours=False, etag="", row=row)
    assert failure is not None
    raise failure


def _stamped(entity: Mapping[str, Any]) -> dict[str, Any]:
    return {**entity, WRITE_ID: new_write_id()}


def insert_own(table: StatusTable, entity: Mapping[str, Any]) -> Written:
    """Create a row (stamped with a fresh ``write_id``); not ours when another writer's
    exists."""
    row = _stamped(entity)
    return write_own(table, row["RowKey"], row[WRITE_ID], lambda: table.insert(row), if_match=None)


def replace_own(table: StatusTable, entity: Mapping[str, Any], *, etag: str) -> Written:
    """Replace a row if unchanged since ``etag`` (stamped with a fresh ``write_id``); not ours
    when another writer changed or deleted it first."""
    row = _stamped(entity)
    return write_own(
        table, row["RowKey"], row[WRITE_ID], lambda: table.replace(row, etag=etag), if_match=etag
    )
