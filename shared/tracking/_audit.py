"""The audit store: every operator action as rows that are only ever created, never rewritten.

An action's row is created before the action takes effect (outcome ``requested``), together
with its request's index row in one transaction: a retry of the same request (same action,
targets and request id) finds the row by its index and keeps the first attempt's facts (who,
when). Each outcome the action reaches later (refused, done) is a row of its own, created once
(see :mod:`._audit_outcomes`); reads fold an action's row with its outcome rows, the furthest
outcome winning, so the outcome only moves forward. No write replaces or merges a row. So:

- died before the row: nothing happened, nothing is recorded; a retry starts again.
- the row's answer lost: the row is read back through its index; ours (or an earlier
  attempt's of the same request) is taken as written, never written twice.
- died after the row, before the outcome: the row says ``requested``; the records it names
  show what happened, and a retry of the same request records the outcome.
- an outcome's answer lost: its row is read back; ours (its write id) or another attempt's of
  the same outcome, it is written once.

Rows are deleted only by :meth:`AuditStore.delete_older_than` (the retention timer), an
action's row with its outcome rows and its index row in the same transaction.
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
from ._audit_outcomes import entry_rows, fold, outcome_entity, rows_end, with_outcome
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
from ._model import utcnow
from ._page import Page, decode_continuation, encode_continuation
from ._table import Operation, StatusTable
from ._writes import insert_own, read_back_needed, status_of

__all__ = ["TRANSACTION_ROWS", "AuditStore"]

_LOGGER = logging.getLogger(__name__)
_ATTEMPTS = 3
TRANSACTION_ROWS = 100
"""Operations in one entity group transaction at most (each action: its row, its outcome rows,
its index)."""


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
        """Record that an entry reached ``outcome`` (requested, refused, done), as a row of its
        own; an entry already as far is returned unchanged. No row is ever rewritten.

        :keyword made: targets the action made (the new version's record key), added to its
            targets.
        :raises AzureError: storage failed; the entry keeps its outcome until a retry.
        """
        if entry.outcome.rank >= outcome.rank:
            return entry
        entity = outcome_entity(entry, outcome, at=self._clock(), detail=detail, made=made)
        written = insert_own(self._table, entity)
        if written.ours:
            # As the row holds it: texts cut, the targets that fit.
            changed = with_outcome(entry, entity)
            _log("completed", changed)
            return changed
        # Another attempt of the request recorded this outcome first: the trail holds it.
        stored = self.get(entry.row_key)
        if stored is None:
            _LOGGER.warning("audit row gone before its outcome row=%s", entry.row_key)
            return entry
        return stored

    def delete_older_than(self, cutoff: datetime, *, deadline: float) -> int:
        """Delete the entries written before ``cutoff`` in the table's order (the newest of
        them first), in transactions of up to :data:`TRANSACTION_ROWS` operations (each entry
        with its outcome rows and its index row). About 300 entries a second against Azurite
        (each with one outcome row; twice as many without).

        :keyword deadline: a :func:`time.monotonic` instant: no transaction starts after it
            (the rest is left for the next run).
        :returns: how many entries were deleted.
        :raises AzureError: storage failed; what was deleted stays deleted.
        """
        deleted = 0
        batch: list[list[str]] = []
        for keys in self._keys_before(cutoff):
            if time.monotonic() >= deadline:
                return deleted
            if sum(map(len, batch)) + len(keys) > TRANSACTION_ROWS:
                deleted += self._delete(batch)
                batch = []
            batch.append(keys)
        if batch and time.monotonic() < deadline:
            deleted += self._delete(batch)
        return deleted

    def _keys_before(self, cutoff: datetime) -> Iterator[list[str]]:
        """The keys to delete per entry written before ``cutoff``: its row, its outcome rows,
        its index row (none for outcome rows that outlived their entry)."""
        rows = self._table.query(
            ["RowKey gt @bound", "RowKey lt @end"],
            {"bound": since_bound(cutoff), "end": RECORDS_END},
            select=["RowKey"],
            per_page=TRANSACTION_ROWS,
        )
        for group in entry_rows(rows):
            keys = [row["RowKey"] for row in group]
            if is_audit_key(keys[0]):
                keys.append(index_key(keys[0].split("-", 1)[1]))
            yield keys

    def _delete(self, batch: list[list[str]]) -> int:
        operations: list[Operation] = [
            ("delete", {"PartitionKey": AUDIT_PARTITION, "RowKey": key}, {})
            for keys in batch
            for key in keys
        ]
        while operations:
            try:
                self._table.transact(operations)
                break
            except TableTransactionError as exc:
                if status_of(exc) != 404:
                    raise
                # A row already gone (another run deleted it): the rest still has to go.
                del operations[exc.index]
        entries = sum(1 for keys in batch if is_audit_key(keys[0]))
        _LOGGER.info("audit rows deleted entries=%d rows=%d", entries, sum(map(len, batch)))
        return entries

    # -- reads --------------------------------------------------------------------------------

    def get(self, row_key: str) -> AuditEntry | None:
        """An entry by its row key (with its outcome rows, one range query), or None."""
        if not is_audit_key(row_key):
            return None
        rows = self._table.query(
            ["RowKey ge @key", "RowKey lt @end"], {"key": row_key, "end": rows_end(row_key)}
        )
        return fold(list(rows))

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
        after = continuation and decode_continuation(continuation, accepts=is_audit_key)
        clauses, params = listing_clauses(
            since=since,
            until=until,
            # Past the last entry's outcome rows too: a page never splits an entry.
            continuation=after and rows_end(after),
            equal={"action": action},
            blob_prefix=None,
        )
        if person and person_key(person):
            # The SDK substitutes parameters between spaces: none may touch a parenthesis.
            clauses.append("( actor_object_id_key eq @person or actor_name_key eq @person )")
            params["person"] = person_key(person)
        found: list[AuditEntry] = []
        # An entry is up to three rows; a page of entries ends where the next entry starts.
        rows = self._table.query(clauses, params, per_page=min(3 * limit + 1, 1000))
        for group in entry_rows(rows):
            entry = fold(group)
            if entry is None:
                continue  # outcome rows that outlived their entry
            if len(found) == limit:
                return Page(tuple(found), encode_continuation(found[-1].row_key))
            found.append(entry)
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
