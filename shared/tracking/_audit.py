"""The audit store: every operator action as one row that no later write can rewrite.

An action's row is created before the action takes effect (outcome ``requested``), together
with its request's index row in one transaction, and is never replaced: a retry of the same
request (same action, targets and request id) finds the row by its index and keeps the first
attempt's facts (who, when). What may change later is only the outcome, forward only
(requested, refused, done), by a write conditional on the row's ETag. So:

- died before the row: nothing happened, nothing is recorded; a retry starts again.
- the row's answer lost: the row is read back through its index; ours (or an earlier
  attempt's of the same request) is taken as written, never written twice.
- died after the row, before the outcome: the row says ``requested``; the records it names
  show what happened, and a retry of the same request records the outcome.

Rows are deleted only by :meth:`AuditStore.delete_older_than` (the retention timer), each with
its index row in the same transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime

from azure.core.exceptions import AzureError
from azure.data.tables import TableClient, TableTransactionError

from ._actor import Actor
from ._audit_model import AuditEntry, AuditOutcome
from ._audit_rows import (
    AUDIT_PARTITION,
    audit_entity,
    audit_from,
    audit_row_key,
    index_entity,
    index_key,
    is_audit_key,
    person_key,
    request_hash,
)
from ._keys import RECORDS_END, since_bound
from ._listing import listing_clauses
from ._model import ConcurrencyError, utcnow
from ._page import Page, decode_continuation, encode_continuation
from ._table import Operation, StatusTable
from ._writes import read_back_needed, replace_own, status_of

__all__ = ["TRANSACTION_ROWS", "AuditStore"]

_LOGGER = logging.getLogger(__name__)
_ATTEMPTS = 3
TRANSACTION_ROWS = 100
"""Operations in one entity group transaction at most (each action: its row and its index)."""


class AuditStore:
    """The audit rows of one status table (partition ``audit``).

    :param client: the status table's client (the table is the files' too).
    :keyword clock: the time source (UTC) of the entries' times.
    """

    def __init__(self, client: TableClient, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._table = StatusTable(client, partition=AUDIT_PARTITION)
        self._clock = clock

    def ensure_ready(self) -> None:
        """Create the status table when missing."""
        self._table.create()

    # -- writes -------------------------------------------------------------------------------

    def record(
        self,
        action: str,
        *,
        actor: Actor,
        request_id: str,
        targets: Sequence[str],
        subject: str | None = None,
        outcome: AuditOutcome = AuditOutcome.REQUESTED,
        detail: str | None = None,
    ) -> AuditEntry:
        """The entry of one request of an operator action: created once, found again after.

        Call it before the action takes effect (``requested``, the default); an action that
        cannot fail after its decision may record ``done`` at once. A second call with the
        same ``action``, ``targets`` and ``request_id`` returns the first call's entry
        unchanged (who and when stay the first's); move its outcome with :meth:`complete`.

        :param action: what was asked, e.g. ``"resubmit"``, ``"release"``.
        :keyword actor: who asked.
        :keyword request_id: the caller's id of the request, the same on every retry.
        :keyword targets: what the action is asked on (record keys, a line's name); at least one.
        :keyword subject: what it is asked on, for people to read (a file's blob path).
        :raises ValueError: no target.
        :raises AzureError: storage failed; nothing is recorded, or the retry finds it.
        """
        if not targets:
            raise ValueError("an audit entry names at least one target")
        digest = request_hash(action, targets, request_id)
        failure: AzureError | None = None
        for _ in range(_ATTEMPTS):
            found = self._find(digest)
            if found is not None:
                _same_request(found, actor)
                return found
            now = self._clock()
            entry = AuditEntry(
                row_key=audit_row_key(now, digest),
                action=action,
                actor=actor,
                at=now,
                request_id=request_id,
                targets=tuple(targets),
                subject=subject,
                outcome=outcome,
                detail=detail,
                completed_at=None if outcome is AuditOutcome.REQUESTED else now,
            )
            entity = audit_entity(entry)
            operations: list[Operation] = [
                ("create", entity, {}),
                ("create", index_entity(digest, entry.row_key), {}),
            ]
            try:
                etag = self._table.transact(operations)[0]
            except AzureError as exc:
                # 409: this request's row exists (our own write whose answer was lost, or a
                # concurrent attempt); no answer: it may have landed. The index tells.
                if not read_back_needed(exc, frozenset({409})):
                    raise
                failure = exc
                continue
            _log("recorded", entry)
            return replace(audit_from(entity), etag=etag)
        assert failure is not None
        raise failure

    def complete(
        self,
        entry: AuditEntry,
        outcome: AuditOutcome,
        *,
        detail: str | None = None,
        made: Sequence[str] = (),
    ) -> AuditEntry:
        """Move an entry's outcome forward (requested, refused, done); an entry already as
        far is returned unchanged. Who, when and what are never rewritten.

        :keyword made: targets the action made (the new version's record key), added to its
            targets.
        :raises AzureError: storage failed; the entry keeps its outcome until a retry.
        """
        for _ in range(_ATTEMPTS):
            if entry.outcome.rank >= outcome.rank:
                return entry
            changed = replace(
                entry,
                outcome=outcome,
                detail=detail,
                completed_at=self._clock(),
                targets=(*entry.targets, *(t for t in made if t not in entry.targets)),
            )
            entity = audit_entity(changed)
            written = replace_own(self._table, entity, etag=entry.etag)
            if written.ours:
                _log("completed", changed)
                # As the row holds it: texts cut, the targets that fit.
                return replace(audit_from(entity), etag=written.etag)
            if written.row is None:
                _LOGGER.warning("audit row gone before its outcome row=%s", entry.row_key)
                return entry
            entry = audit_from(written.row)  # another attempt moved it: decide again
        raise ConcurrencyError(f"audit entry {entry.row_key} kept changing")

    def delete_older_than(self, cutoff: datetime, *, deadline: float) -> int:
        """Delete the entries written before ``cutoff`` in the table's order (the newest of
        them first), in transactions of up to :data:`TRANSACTION_ROWS` operations (each entry
        with its index row). About 300 entries a second against Azurite.

        :keyword deadline: a :func:`time.monotonic` instant: no transaction starts after it
            (the rest is left for the next run).
        :returns: how many entries were deleted.
        :raises AzureError: storage failed; what was deleted stays deleted.
        """
        deleted = 0
        batch: list[str] = []
        for row_key in self._keys_before(cutoff):
            if time.monotonic() >= deadline:
                return deleted
            batch.append(row_key)
            if len(batch) * 2 == TRANSACTION_ROWS:
                deleted += self._delete(batch)
                batch = []
        if batch and time.monotonic() < deadline:
            deleted += self._delete(batch)
        return deleted

    def _keys_before(self, cutoff: datetime) -> Iterator[str]:
        rows = self._table.query(
            ["RowKey gt @bound", "RowKey lt @end"],
            {"bound": since_bound(cutoff), "end": RECORDS_END},
            select=["RowKey"],
            per_page=TRANSACTION_ROWS // 2,
        )
        return (row["RowKey"] for row in rows)

    def _delete(self, row_keys: list[str]) -> int:
        operations: list[Operation] = []
        for row_key in row_keys:
            digest = row_key.split("-", 1)[1]
            for key in (row_key, index_key(digest)):
                operations.append(("delete", {"PartitionKey": AUDIT_PARTITION, "RowKey": key}, {}))
        while operations:
            try:
                self._table.transact(operations)
                break
            except TableTransactionError as exc:
                if status_of(exc) != 404:
                    raise
                # A row already gone (another run deleted it): the rest still has to go.
                del operations[exc.index]
        _LOGGER.info("audit rows deleted count=%d", len(row_keys))
        return len(row_keys)

    # -- reads --------------------------------------------------------------------------------

    def get(self, row_key: str) -> AuditEntry | None:
        """An entry by its row key, or None."""
        row = self._table.get(row_key)
        return None if row is None else audit_from(row)

    def find(self, action: str, *, targets: Sequence[str], request_id: str) -> AuditEntry | None:
        """The entry of a request, or None when it was never recorded."""
        return self._find(request_hash(action, targets, request_id))

    def _find(self, digest: str) -> AuditEntry | None:
        pointer = self._table.get(index_key(digest))
        if pointer is None:
            return None
        entry = self.get(pointer["audit_key"])
        if entry is None:
            # Only a retention run that failed half-way leaves an index without its row.
            self._table.delete(index_key(digest), etag=pointer.metadata["etag"])
        return entry

    def list_entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        person: str | None = None,
        action: str | None = None,
        limit: int = 50,
        continuation: str | None = None,
    ) -> Page[AuditEntry]:
        """Entries newest first, filtered, one page at a time.

        :keyword since: only entries written at or after this time (``until``: at or before).
        :keyword person: only actions of this object id or display name (any case).
        :keyword action: only this action.
        :keyword continuation: a token from the previous page.
        :raises ValueError: a continuation token this store did not issue.
        """
        clauses, params = listing_clauses(
            since=since,
            until=until,
            continuation=continuation and decode_continuation(continuation, accepts=is_audit_key),
            equal={"action": action},
            blob_prefix=None,
        )
        if person and person_key(person):
            # The SDK substitutes parameters between spaces: none may touch a parenthesis.
            clauses.append("( actor_object_id_key eq @person or actor_name_key eq @person )")
            params["person"] = person_key(person)
        found: list[AuditEntry] = []
        for row in self._table.query(clauses, params, per_page=min(limit + 1, 1000)):
            if len(found) == limit:
                return Page(tuple(found), encode_continuation(found[-1].row_key))
            found.append(audit_from(row))
        return Page(tuple(found), None)


def _log(event: str, entry: AuditEntry) -> None:
    """One log line per audit write, with the ids an operator searches by."""
    _LOGGER.info(
        "audit %s action=%s outcome=%s request=%s actor=%s actor_id=%s targets=%s row=%s",
        event,
        entry.action,
        entry.outcome.value,
        entry.request_id,
        entry.actor.name,
        entry.actor.object_id,
        ",".join(entry.targets),
        entry.row_key,
    )


def _same_request(found: AuditEntry, actor: Actor) -> None:
    """A retry of a recorded request keeps the first attempt's actor; say so when another
    caller sent the same request id."""
    if found.actor != actor:
        _LOGGER.warning(
            "audit request sent again by another caller row=%s request=%s recorded=%s",
            found.row_key,
            found.request_id,
            found.actor.name,
        )
