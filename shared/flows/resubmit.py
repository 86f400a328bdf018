"""Resubmit a final file: copy it from where it is now into the inbound path as a new version.

The new version is an ordinary delivery for the enqueuer (claimed once by its path and ETag),
so a resubmit can never send one version twice. What makes it idempotent per request is that
at most one new version is ever made from a record, and that it can always be found again:

1. The copy into the inbound path carries ``d365_resubmit_of`` (the old record's key) and
   ``d365_resubmit_request`` (the request id), and none of our stamp: the enqueuer takes it
   for a new version, and its record gets ``resubmit_of`` and ``resubmit_request`` from them.
   The copy is conditional on the destination as it was read (absent, or the old version
   itself), so of two concurrent requests one copies and the other meets 412.
2. :meth:`Enqueuer.handle` is called on the new version at once (the blob trigger may deliver
   it too; the claim makes one of them the sender).
3. The old record gets ``resubmitted_as`` and ``resubmit_request`` (ETag-conditional).

What happens when a step is the last one that runs:

- died before 1: nothing happened; a retry starts again.
- died between 1 and 2: the copy sits in the inbound path; the blob trigger delivers it (in
  Azure), and a retry finds it by its metadata, hands it to the enqueuer and links it.
- died between 2 and 3: the new record exists; a retry finds it (the copy's metadata, or,
  once it was archived, the path's newer versions in the blob-path index) and links it.

A retry with the same request id answers as the first call did; another request id meets
409 "already resubmitted as ...". A file whose outcome is unknown (F&O may have it), or that
F&O already has, is resubmitted only with ``confirm``, and the refusal names the risk.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, BlobProperties, BlobServiceClient

from shared import telemetry
from shared.clients.storage import copy_succeeded
from shared.errors import AppError
from shared.flows.archive import InboundContainer
from shared.flows.intake import Intake
from shared.flows.source_blob import (
    RECORD_KEY,
    REQUEST_ID_LIMIT,
    RESUBMIT_OF_KEY,
    RESUBMIT_REQUEST_KEY,
    STAMP_KEYS,
    fingerprint,
    resubmit_fields,
)
from shared.tracking import (
    ConcurrencyError,
    FailureKind,
    TrackedFile,
    TrackingState,
    TrackingStore,
)

__all__ = [
    "ResubmitError",
    "ResubmitResult",
    "Resubmitter",
    "check_request_id",
    "outcome_unknown",
    "risk_of",
]

_LOGGER = logging.getLogger(__name__)
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{REQUEST_ID_LIMIT}}}")
_ATTEMPTS = 4
_OUR_KEYS = STAMP_KEYS | {RESUBMIT_OF_KEY, RESUBMIT_REQUEST_KEY}


class ResubmitError(AppError):
    """A resubmit that cannot be done (now); ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ResubmitResult:
    """The old record (linked), and the new version's record when it is tracked already."""

    original: TrackedFile
    resubmitted: TrackedFile | None


@dataclass(frozen=True)
class _Successor:
    row_key: str
    request_id: str
    record: TrackedFile | None


def outcome_unknown(record: TrackedFile) -> bool:
    """True when F&O may hold the file though we never learnt its message id."""
    return (
        record.state is TrackingState.ENQUEUE_FAILED
        and record.failure is FailureKind.OUTCOME_UNKNOWN
    )


def risk_of(record: TrackedFile) -> str | None:
    """Why resubmitting ``record`` may import the file twice; None when it cannot."""
    if outcome_unknown(record):
        return (
            "the outcome of its enqueue is unknown: F&O may already have this file, and "
            "resubmitting it may import it twice. Look in F&O (Data management > the "
            "recurring job's message list) for its external identifier first"
        )
    if record.state is TrackingState.PROCESSED:
        return "F&O has already imported this file without errors; resubmitting imports it again"
    if record.state is TrackingState.TIMED_OUT and record.message_id:
        return (
            f"F&O has this file (message {record.message_id}) and may still process it; "
            "resubmitting may import it twice"
        )
    if record.state is TrackingState.TIMED_OUT and record.execution_id:
        # ImportFromPackage may have been called: F&O may have run (or still run) the import.
        return (
            f"F&O may have imported this package (execution {record.execution_id}) or may "
            "still be importing it; resubmitting may import it twice. Look in F&O (Data "
            "management > Job history) for that execution first"
        )
    return None


def check_request_id(request_id: str | None) -> str:
    """The request id, validated: it goes into blob metadata (ASCII header text)."""
    if not request_id:
        raise ResubmitError(
            400,
            "a request id is required: send an Idempotency-Key header (or request_id in the "
            "JSON body), the same for every retry of one resubmit, e.g. a new UUID",
        )
    if not _REQUEST_ID.fullmatch(request_id):
        raise ResubmitError(
            400,
            f"request id {request_id[:40]!r} is not accepted; expected 1-{REQUEST_ID_LIMIT} "
            "letters, digits, '.', '_', ':' or '-', e.g. a UUID",
        )
    return request_id


class Resubmitter:
    """Copies a final file back into the inbound path and links the two records.

    :param store: the tracking store.
    :param enqueuer: takes the new version (as the blob trigger would).
    :param inbound: gives the inbound container.
    :param service: the blob service holding the inbound and archive containers.
    """

    def __init__(
        self,
        store: TrackingStore,
        enqueuer: Intake,
        inbound: InboundContainer,
        service: BlobServiceClient,
    ) -> None:
        self._store = store
        self._enqueuer = enqueuer
        self._inbound = inbound
        self._service = service

    def resubmit(
        self, record_key: str, *, request_id: str, confirm: bool = False
    ) -> ResubmitResult:
        """Resubmit the file of record ``record_key`` once per ``request_id``.

        :raises ResubmitError: 404 unknown record; 409 not final, being archived, a risk not
            confirmed, already resubmitted by another request, or the file is not where the
            record says; 400 a bad request id.
        """
        request_id = check_request_id(request_id)
        for _ in range(_ATTEMPTS):
            record = self._store.get(record_key)
            if record is None:
                raise ResubmitError(404, f"no tracked file has record key {record_key}")
            if record.resubmitted_as:
                return self._answer(record, request_id)
            _check_resubmittable(record, confirm=confirm)
            successor = self._find_successor(record)
            if successor is None:
                if not self._copy(record, request_id):
                    continue  # another request copied first: find its copy
                successor = self._find_successor(record)
            if successor is not None:
                return self._answer(self._link(record, successor), request_id, successor)
        raise ResubmitError(
            409, f"record {record_key} is being resubmitted by another request; try again"
        )

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
                return _Successor(tracked.row_key, fields["resubmit_request"], tracked)
        for version in self._store.newer_versions(record):
            if version.resubmit_of == record.row_key:
                return _Successor(version.row_key, version.resubmit_request or "", version)
        return None

    def _copy(self, record: TrackedFile, request_id: str) -> bool:
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
        metadata |= {RESUBMIT_OF_KEY: record.row_key, RESUBMIT_REQUEST_KEY: request_id}
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
            "resubmitted blob=%s record=%s from=%s request=%s",
            record.blob,
            record.record_id,
            source.container_name,
            request_id,
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

    def _link(self, record: TrackedFile, successor: _Successor) -> TrackedFile:
        """Write ``resubmitted_as`` on the old record (re-read when it changed meanwhile)."""
        for _ in range(_ATTEMPTS):
            if record.resubmitted_as:
                return record
            try:
                return self._store.update(
                    record,
                    resubmitted_as=successor.row_key,
                    resubmit_request=successor.request_id,
                )
            except ConcurrencyError:
                record = self._store.get(record.row_key) or record
        raise ResubmitError(503, f"record {record.record_id} kept changing; retry the request")

    def _answer(
        self, record: TrackedFile, request_id: str, successor: _Successor | None = None
    ) -> ResubmitResult:
        """The result for the request that made the link; 409 for any other."""
        if record.resubmit_request != request_id:
            raise ResubmitError(
                409,
                f"this file was already resubmitted as record {record.resubmitted_as} by "
                "another request; open that record (and resubmit it if needed)",
            )
        new = successor.record if successor else None
        if new is None and record.resubmitted_as:
            new = self._store.get(record.resubmitted_as)
        return ResubmitResult(record, new)


def _check_resubmittable(record: TrackedFile, *, confirm: bool) -> None:
    if not record.state.is_terminal:
        raise ResubmitError(
            409,
            f"the file is {record.state.value}, not final: it is still on its way through "
            "F&O; resubmit it once it has reached a final state",
        )
    if record.archive_pending:
        raise ResubmitError(409, "the file is being archived; try again in a minute")
    risk = risk_of(record)
    if risk and not confirm:
        raise ResubmitError(409, f"not resubmitted: {risk}. Resubmit with confirm=true to go on.")


def _is_copy_of(props: BlobProperties | None, record: TrackedFile) -> bool:
    """True when ``props`` is a version resubmitted from ``record``."""
    return props is not None and props.metadata.get(RESUBMIT_OF_KEY) == record.row_key


def _properties(blob: BlobClient) -> BlobProperties | None:
    try:
        return blob.get_blob_properties()
    except ResourceNotFoundError:
        return None
