"""The metadata stamp a tracked file leaves on its source blob, read back by its fingerprint.

Every write to a blob, metadata included, gives it a new ETag. Event Grid raises no
BlobCreated event for a metadata write, but a polling trigger (and the local host) sees a new
ETag. The stamp therefore carries the record's row key and the version's fingerprint, so the
enqueuer recognises a delivery caused by its own stamp (see :func:`is_own_stamp`), and the
archive flow (:mod:`shared.flows.archive`) recognises the tracked content under whatever ETag
our stamp gave it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobProperties

from shared import telemetry
from shared.clients.bounded_json import loads
from shared.clients.storage import MESSAGE_ID_METADATA, version_properties
from shared.tracking import Actor, TrackedFile, clean_etag, is_record_key, quoted_etag

__all__ = [
    "FINGERPRINT_KEY",
    "RECORD_KEY",
    "REQUEST_ID_LIMIT",
    "RESUBMIT_AT_KEY",
    "RESUBMIT_BY_KEY",
    "RESUBMIT_OF_KEY",
    "RESUBMIT_REQUEST_KEY",
    "STAMP_KEYS",
    "fingerprint",
    "is_own_stamp",
    "resubmit_fields",
    "resubmit_metadata",
    "stamp",
    "stamp_values",
    "stamped_record_key",
    "with_stamp",
]

_LOGGER = logging.getLogger(__name__)

# Metadata names must be C# identifiers; Azure returns them lower-cased.
STATE_KEY = "d365_state"
RECORD_KEY = "d365_record"
FINGERPRINT_KEY = "d365_fingerprint"
REASON_KEY = "d365_reason"
# A resubmitted copy carries the record it came from and the request that made it.
RESUBMIT_OF_KEY = "d365_resubmit_of"
RESUBMIT_REQUEST_KEY = "d365_resubmit_request"
# ... and who asked for it, when (the actor as percent-encoded JSON: metadata is ASCII).
RESUBMIT_BY_KEY = "d365_resubmit_by"
RESUBMIT_AT_KEY = "d365_resubmit_at"
_ACTOR_METADATA_LIMIT = 2048
REQUEST_ID_LIMIT = 100
# In the order they are kept when the uploader's metadata leaves little room.
_STAMP_KEYS = (STATE_KEY, RECORD_KEY, FINGERPRINT_KEY, MESSAGE_ID_METADATA, REASON_KEY)
STAMP_KEYS = frozenset(_STAMP_KEYS)
"""Our stamp's metadata names."""
_REASON_LIMIT = 1024
METADATA_LIMIT = 8 * 1024
"""Azure's limit on a blob's metadata: names and values together."""


def fingerprint(props: BlobProperties) -> str:
    """What identifies a blob's content across metadata writes: size, MD5 and creation time."""
    md5 = bytes(props.content_settings.content_md5 or b"").hex()
    created = props.creation_time.isoformat() if props.creation_time else ""
    return f"{props.size}:{md5}:{created}"


def stamped_record_key(props: BlobProperties) -> str | None:
    """The record key our stamp left on the blob; None when absent or not shaped like one
    (an uploader's metadata is input, never a table key as it stands)."""
    value = props.metadata.get(RECORD_KEY)
    return value if value and is_record_key(value) else None


def resubmit_metadata(
    record: TrackedFile, *, request_id: str, actor: Actor, at: datetime
) -> dict[str, str]:
    """The metadata of a copy resubmitted from ``record``: where from, which request, who
    asked and when (read back by :func:`resubmit_fields`)."""
    by = quote(json.dumps(actor.to_dict(), ensure_ascii=False), safe="")
    return {
        RESUBMIT_OF_KEY: record.row_key,
        RESUBMIT_REQUEST_KEY: request_id,
        # A name too long for the metadata is left out: the audit row keeps it.
        **({RESUBMIT_BY_KEY: by} if len(by) <= _ACTOR_METADATA_LIMIT else {}),
        RESUBMIT_AT_KEY: at.isoformat(),
    }


def resubmit_fields(props: BlobProperties) -> dict[str, Any]:
    """The record fields of a resubmitted copy (``resubmit_of``, ``resubmit_request``,
    ``resubmit_by``, ``resubmit_at``) from its metadata; empty when it names no record key,
    and without who or when where those are not ours (an uploader's metadata is input)."""
    origin = props.metadata.get(RESUBMIT_OF_KEY)
    if not origin or not is_record_key(origin):
        return {}
    request = props.metadata.get(RESUBMIT_REQUEST_KEY, "")[:REQUEST_ID_LIMIT]
    fields: dict[str, Any] = {"resubmit_of": origin, "resubmit_request": request}
    try:
        by = props.metadata.get(RESUBMIT_BY_KEY)
        fields["resubmit_by"] = Actor.from_dict(loads(unquote(by))) if by else None
        at = datetime.fromisoformat(props.metadata.get(RESUBMIT_AT_KEY, ""))
        fields["resubmit_at"] = at if at.tzinfo else None
    except (ValueError, TypeError, KeyError, AttributeError):
        _LOGGER.warning("resubmitted copy with unreadable metadata blob=%s", props.name)
    return fields


def is_own_stamp(props: BlobProperties, record: TrackedFile | None) -> bool:
    """True when this version differs from the tracked one only by our metadata stamp."""
    if record is None or record.blob != props.name:
        return False
    return record.fingerprint == fingerprint(props) == props.metadata.get(FINGERPRINT_KEY)


def stamp_values(record: TrackedFile) -> dict[str, str]:
    """The metadata we put on a source blob for a record."""
    values = {
        STATE_KEY: record.state.value,
        RECORD_KEY: record.row_key,
        FINGERPRINT_KEY: record.fingerprint or "",
    }
    if record.message_id:
        values[MESSAGE_ID_METADATA] = record.message_id
    reason = record.last_error or record.reject_reason
    if reason:
        # Metadata values are ASCII header text.
        values[REASON_KEY] = reason.encode("ascii", "replace").decode()[:_REASON_LIMIT]
    return values


def _size(metadata: Mapping[str, str]) -> int:
    return sum(len(k) + len(v.encode()) for k, v in metadata.items())


def with_stamp(existing: Mapping[str, str], record: TrackedFile) -> dict[str, str]:
    """The uploader's metadata plus as much of our stamp as fits Azure's 8 KiB limit.

    The uploader's own metadata is kept whole; our reason is shortened first, then our least
    important keys are left out.
    """
    merged = {k: v for k, v in existing.items() if k not in _STAMP_KEYS}
    room = METADATA_LIMIT - _size(merged)
    for key, full in stamp_values(record).items():
        value = full[: max(room - len(key), 0)] if key == REASON_KEY else full
        cost = len(key) + len(value.encode())
        if cost <= room and value:
            merged[key] = value
            room -= cost
    return merged


def stamp(
    blob: BlobClient,
    record: TrackedFile,
    *,
    etag: str,
    metadata: Mapping[str, str] | None = None,
) -> str | None:
    """Merge our stamp into the blob's metadata if the blob is still version ``etag``.

    :keyword metadata: the version's metadata when the caller has it (saves a read).
    :returns: the blob's new ETag, or None when the blob is gone or was overwritten.
    """
    etag = quoted_etag(etag)
    try:
        if metadata is None:
            metadata = version_properties(blob, etag).metadata
        result = blob.set_blob_metadata(
            with_stamp(metadata, record), etag=etag, match_condition=MatchConditions.IfNotModified
        )
    except (ResourceModifiedError, ResourceNotFoundError):
        # Also what a retried write whose first answer was lost meets: the stamp is there.
        _LOGGER.info(
            "blob changed before it could be stamped blob=%s record=%s",
            record.blob,
            record.record_id,
            extra=telemetry.record_ids(record),
        )
        return None
    return clean_etag(str(result["etag"]))
