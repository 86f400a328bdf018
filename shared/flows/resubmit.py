"""Resubmit a final file: copy it from where it is now into the inbound path as a new version.

The new version is an ordinary delivery for the enqueuer (claimed once by its path and ETag),
so a resubmit can never send one version twice. What makes it idempotent per request is that
at most one new version is ever made from a record, and that it can always be found again:

0. The audit row of the request (:class:`shared.tracking.AuditStore`, outcome ``requested``):
   who asked, when, the request id, the old record's key. A retry of the request finds it
   and keeps its who and when; everything below takes them from it.
1. The copy into the inbound path carries ``d365_resubmit_of`` (the old record's key),
   ``d365_resubmit_request`` (the request id), ``d365_resubmit_by`` and ``d365_resubmit_at``
   (who asked, when), and none of our stamp: the enqueuer takes it for a new version, and
   its record gets ``resubmit_of``, ``resubmit_request``, ``resubmit_by`` and ``resubmit_at``
   from them. The copy is conditional on the destination as it was read (absent, or the old
   version itself), so of two concurrent requests one copies and the other meets 412.
2. :meth:`Enqueuer.handle` is called on the new version at once (the blob trigger may deliver
   it too; the claim makes one of them the sender).
3. The old record gets ``resubmitted_as``, ``resubmitted_request``, ``resubmitted_by`` and
   ``resubmitted_at`` (ETag-conditional), those of the request that made the copy.
4. The audit row's outcome: ``done`` with the new record's key (``refused`` with the reason
   when the request is refused after step 0).

What happens when a step is the last one that runs:

- died before 0: nothing happened; a retry starts again.
- died between 0 and 1: the audit row says ``requested`` and nothing else happened; a retry
  of the same request goes on from it, another request records its own row.
- died between 1 and 2: the copy sits in the inbound path; the blob trigger delivers it (in
  Azure), and a retry finds it by its metadata, hands it to the enqueuer and links it.
- died between 2 and 3: the new record exists; a retry finds it (the copy's metadata, or,
  once it was archived, the path's newer versions in the blob-path index) and links it.
- died between 3 and 4: both records name who asked; the audit row says ``requested`` (the
  action was begun, its records show how it ended) until a retry of the request marks it done.

So an action that took effect always has its audit row, and a retry never writes a second
one nor changes who is recorded.

A retry with the same request id answers as the first call did; another request id meets
409 "already resubmitted as ...". A file whose outcome is unknown (F&O may have it), or that
F&O already has, is resubmitted only with ``confirm``, and the refusal names the risk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, BlobProperties, BlobServiceClient

from shared import telemetry
from shared.clients.storage import copy_succeeded
from shared.flows.archive import InboundContainer
from shared.flows.intake import Intake
from shared.flows.resubmit_rules import (
    ResubmitError,
    check_request_id,
    check_resubmittable,
    outcome_unknown,
    risk_of,
)
from shared.flows.source_blob import (
    RECORD_KEY,
    RESUBMIT_AT_KEY,
    RESUBMIT_BY_KEY,
    RESUBMIT_OF_KEY,
    RESUBMIT_REQUEST_KEY,
    STAMP_KEYS,
    fingerprint,
    resubmit_fields,
    resubmit_metadata,
)
from shared.tracking import (
    Actor,
    AuditEntry,
    AuditOutcome,
    AuditStore,
    ConcurrencyError,
    TrackedFile,
    TrackingStore,
)

__all__ = [
    "RESUBMIT_ACTION",
    "ResubmitError",
    "ResubmitResult",
    "Resubmitter",
    "check_request_id",
    "outcome_unknown",
    "risk_of",
]

_LOGGER = logging.getLogger(__name__)
_ATTEMPTS = 4
_OUR_KEYS = STAMP_KEYS | {RESUBMIT_OF_KEY, RESUBMIT_REQUEST_KEY, RESUBMIT_BY_KEY, RESUBMIT_AT_KEY}
RESUBMIT_ACTION = "resubmit"
"""The audit trail's name of this action."""


@dataclass(frozen=True)
class ResubmitResult:
    """The old record (linked), and the new version's record when it is tracked already."""

    original: TrackedFile
    resubmitted: TrackedFile | None


@dataclass
class _Request:
    """One call of :meth:`Resubmitter.resubmit`, with its audit entry once written."""

    request_id: str
    actor: Actor
    confirm: bool
    entry: AuditEntry | None = None


@dataclass(frozen=True)
class _Successor:
    row_key: str
    request_id: str
    record: TrackedFile | None
    by: Actor | None = None
    at: datetime | None = None


class Resubmitter:
    """Copies a final file back into the inbound path and links the two records.

    :param store: the tracking store.
    :param enqueuer: takes the new version (as the blob trigger would).
    :param inbound: gives the inbound container.
    :param service: the blob service holding the inbound and archive containers.
    :param audit: where each request is recorded (who asked, when, how it ended).
    """

    def __init__(
        self,
        store: TrackingStore,
        enqueuer: Intake,
        inbound: InboundContainer,
        service: BlobServiceClient,
        audit: AuditStore,
    ) -> None:
        self._store = store
        self._enqueuer = enqueuer
        self._inbound = inbound
        self._service = service
        self._audit = audit

    def resubmit(
        self, record_key: str, *, request_id: str, actor: Actor, confirm: bool = False
    ) -> ResubmitResult:
        """Resubmit the file of record ``record_key`` once per ``request_id``.

        :keyword actor: who asks; recorded on both records and in the audit row (a retry
            of the request keeps the first attempt's).
        :raises ResubmitError: 404 unknown record; 409 not final, being archived, a risk not
            confirmed, already resubmitted by another request, or the file is not where the
            record says; 400 a bad request id. A refusal before anything was begun writes no
            audit row; one after (in this call or an earlier attempt of the request) is the
            row's outcome.
        """
        request = _Request(check_request_id(request_id), actor, confirm)
        try:
            return self._resubmit(record_key, request)
        except ResubmitError as exc:
            if exc.status not in (404, 409):
                raise
            # An earlier attempt of this request may have written its row, then died: a
            # refusal now (another request resubmitted the file meanwhile) is that row's end.
            entry = request.entry or self._audit.find(
                RESUBMIT_ACTION, targets=(record_key,), request_id=request.request_id
            )
            if entry is not None:
                self._audit.complete(entry, AuditOutcome.REFUSED, detail=str(exc))
            raise

    def _resubmit(self, record_key: str, request: _Request) -> ResubmitResult:
        for _ in range(_ATTEMPTS):
            record = self._store.get(record_key)
            if record is None:
                raise ResubmitError(404, f"no tracked file has record key {record_key}")
            if record.resubmitted_as:
                return self._done(self._answer(record, request.request_id), request)
            check_resubmittable(record, confirm=request.confirm)
            entry = request.entry = request.entry or self._entry(record, request)
            successor = self._find_successor(record)
            if successor is None:
                if not self._copy(record, entry):
                    continue  # another request copied first: find its copy
                successor = self._find_successor(record)
            if successor is not None:
                linked = self._link(record, successor, entry)
                return self._done(self._answer(linked, request.request_id, successor), request)
        raise ResubmitError(
            409, f"record {record_key} is being resubmitted by another request; try again"
        )

    def _entry(self, record: TrackedFile, request: _Request) -> AuditEntry:
        """The request's audit row: written before anything else, found again on a retry."""
        return self._audit.record(
            RESUBMIT_ACTION,
            actor=request.actor,
            request_id=request.request_id,
            targets=(record.row_key,),
            subject=record.blob,
        )

    def _done(self, result: ResubmitResult, request: _Request) -> ResubmitResult:
        """The request's audit row marked done, naming the new version's record."""
        entry = request.entry or self._entry(result.original, request)
        self._audit.complete(entry, AuditOutcome.DONE, made=(result.original.resubmitted_as or "",))
        return result

    # -- steps --------------------------------------------------------------------------------

    def _find_successor(self, record: TrackedFile) -> _Successor | None:
        """The version already resubmitted from ``record``: in the inbound path (handed to the
        enqueuer, which tracks it once), or already tracked among the path's newer versions."""
        inbound = self._inbound.source(record.blob)
        props = _properties(inbound)
        if _is_copy_of(props, record):
            tracked = self._enqueuer.handle(inbound)
            if tracked is not None and tracked.resubmit_of == record.row_key:
                fields = resubmit_fields(props)
                return _Successor(
                    tracked.row_key,
                    fields["resubmit_request"],
                    tracked,
                    fields.get("resubmit_by"),
                    fields.get("resubmit_at"),
                )
        for version in self._store.newer_versions(record):
            if version.resubmit_of == record.row_key:
                return _Successor(
                    version.row_key,
                    version.resubmit_request or "",
                    version,
                    version.resubmit_by,
                    version.resubmit_at,
                )
        return None

    def _copy(self, record: TrackedFile, entry: AuditEntry) -> bool:
        """Copy the file into the inbound path; False when another writer changed it first."""
        found = self._source(record)
        if found is None:
            return False  # another request's copy landed meanwhile: the next attempt finds it
        source, props = found
        target = self._inbound.source(record.blob)
        if source.url == target.url:
            # Copy Blob onto the same name replaces the blob and its metadata: a new version
            # (new ETag) of the same content, which is what the enqueuer must see.
            condition = {"etag": props.etag, "match_condition": MatchConditions.IfNotModified}
        else:
            condition = {"if_none_match": "*"}
        metadata = {k: v for k, v in props.metadata.items() if k not in _OUR_KEYS}
        metadata |= resubmit_metadata(
            record, request_id=entry.request_id, actor=entry.actor, at=entry.at
        )
        try:
            started = target.start_copy_from_url(
                source.url,
                metadata=metadata,
                source_etag=props.etag,
                source_match_condition=MatchConditions.IfNotModified,
                **condition,
            )
        except (ResourceModifiedError, ResourceExistsError):
            # The next attempt reads again: another request's copy, or another version.
            return False
        if not copy_succeeded(target, started):
            raise ResubmitError(
                503, f"the copy into {record.blob} has not finished; retry with the same request id"
            )
        _LOGGER.info(
            "resubmitted blob=%s record=%s from=%s request=%s by=%s",
            record.blob,
            record.record_id,
            source.container_name,
            entry.request_id,
            entry.actor.name,
            extra=telemetry.record_ids(record),
        )
        return True

    def _source(self, record: TrackedFile) -> tuple[BlobClient, BlobProperties] | None:
        """Where the file is now, checked to hold the record's content; None when the inbound
        path holds a resubmitted copy of it (made by a concurrent request)."""
        if record.archived_to:
            container, _, path = record.archived_to.partition("/")
            source = self._service.get_blob_client(container, path)
            props = _properties(source)
            if props is None or props.metadata.get(RECORD_KEY) != record.row_key:
                raise ResubmitError(
                    409, f"the archived copy {record.archived_to} is gone or holds another file"
                )
            inbound = _properties(self._inbound.source(record.blob))
            if _is_copy_of(inbound, record):
                return None
            if inbound is not None:
                raise ResubmitError(
                    409,
                    f"{self._inbound.inbound_container}/{record.blob} holds another version "
                    "now (tracked on its own); resubmit that version's record instead",
                )
            return source, props
        source = self._inbound.source(record.blob)
        props = _properties(source)
        if props is None:
            raise ResubmitError(
                409,
                f"{self._inbound.inbound_container}/{record.blob} was deleted and the file "
                "was never archived: nothing is left to resubmit; upload it again",
            )
        if _is_copy_of(props, record):
            return None
        if fingerprint(props) != record.fingerprint:
            raise ResubmitError(
                409,
                f"{self._inbound.inbound_container}/{record.blob} was overwritten by a newer "
                "version (tracked on its own); resubmit that version's record instead",
            )
        return source, props

    def _link(self, record: TrackedFile, successor: _Successor, entry: AuditEntry) -> TrackedFile:
        """Write ``resubmitted_as`` on the old record (re-read when it changed meanwhile), with
        who asked for the copy and when (this request's, when the copy names none)."""
        ours = successor.request_id == entry.request_id
        by = successor.by or (entry.actor if ours else None)
        at = successor.at or (entry.at if ours else None)
        for _ in range(_ATTEMPTS):
            if record.resubmitted_as:
                return record
            try:
                return self._store.update(
                    record,
                    resubmitted_as=successor.row_key,
                    resubmitted_request=successor.request_id,
                    resubmitted_by=by,
                    resubmitted_at=at,
                )
            except ConcurrencyError:
                record = self._store.get(record.row_key) or record
        raise ResubmitError(503, f"record {record.record_id} kept changing; retry the request")

    def _answer(
        self, record: TrackedFile, request_id: str, successor: _Successor | None = None
    ) -> ResubmitResult:
        """The result for the request that made the link; 409 for any other."""
        if record.resubmitted_request != request_id:
            raise ResubmitError(
                409,
                f"this file was already resubmitted as record {record.resubmitted_as} by "
                "another request; open that record (and resubmit it if needed)",
            )
        new = successor.record if successor else None
        if new is None and record.resubmitted_as:
            new = self._store.get(record.resubmitted_as)
        return ResubmitResult(record, new)


def _is_copy_of(props: BlobProperties | None, record: TrackedFile) -> bool:
    """True when ``props`` is a version resubmitted from ``record``."""
    return props is not None and props.metadata.get(RESUBMIT_OF_KEY) == record.row_key


def _properties(blob: BlobClient) -> BlobProperties | None:
    try:
        return blob.get_blob_properties()
    except ResourceNotFoundError:
        return None
