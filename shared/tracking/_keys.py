"""The row keys of the status model's files partition.

Every row of the status model lives in one partition, so that a record and the rows that
follow it (its place on the poll schedule, its message-id and blob-path indexes) are written
together in one entity group transaction: they cannot disagree after a failed call.

=================================  ===========================================================
row key                            row
=================================  ===========================================================
``<inverted ms>-<record id>``      a record: one blob version; newest first is the table order
``~b-<path hash>-<record key>``    blob-path index: the versions of one path, newest first
``~m-<message id>``                message-id index: F&O's message id to the record
``~p-<record id>``                 purge row: the blob folders of a deleted record, until gone
``~s-<record id>``                 poll-schedule entry, only while the record is not final
``~lease-poller``                  the poll lease and the watermark of the last whole tick
``~lease-package-import``          the package-import lease: one ImportFromPackage in flight
``~l-<line hash>``                 an ordered line's head (see :mod:`._line`)
``~w-<line hash>-<record id>``     a file waiting in an ordered line
``~lease-retention``               the retention lease: one run at a time, the oldest record kept
=================================  ===========================================================
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

__all__ = [
    "PARTITION",
    "PURGE_PREFIX",
    "RECORDS_END",
    "SCHEDULE_PREFIX",
    "blob_index_key",
    "blob_index_prefix",
    "clean_etag",
    "is_record_key",
    "lease_key",
    "message_key",
    "modified_millis",
    "purge_key",
    "quoted_etag",
    "record_id_for",
    "record_row_key",
    "record_time",
    "schedule_key",
    "since_bound",
    "until_bound",
]

PARTITION = "files"
RECORDS_END = "~"
"""Every record key sorts before this; every other row after it."""
SCHEDULE_PREFIX = "~s-"
PURGE_PREFIX = "~p-"
_MESSAGE_PREFIX = "~m-"
_BLOB_PREFIX = "~b-"
_LEASE_PREFIX = "~lease-"
_INVERT_BASE = 10**13 - 1
# ASCII digits: \d also takes other scripts' digits, which no key of ours holds.
_RECORD_KEY = re.compile(r"[0-9]{13}-[0-9a-f]{32}")


def clean_etag(etag: str) -> str:
    """An ETag without the quotes HTTP puts around it (quotes are awkward in keys)."""
    return etag.strip().strip('"')


def quoted_etag(etag: str) -> str:
    """An ETag in the quoted form conditional headers expect."""
    return f'"{clean_etag(etag)}"'


def record_id_for(blob: str, etag: str) -> str:
    """The record id of one blob version: stable, so every delivery computes the same one."""
    digest = hashlib.sha256(f"{blob}\n{clean_etag(etag)}".encode())
    return digest.hexdigest()[:32]


def record_row_key(modified_at: datetime, record_id: str) -> str:
    """Inverted time first, so the newest record sorts first.

    The time is the blob version's own (its Last-Modified), so every delivery of a version
    computes the same key and creating the row is the claim.
    """
    millis = int(modified_at.timestamp() * 1000)
    return f"{_INVERT_BASE - max(millis, 0):013d}-{record_id}"


def modified_millis(row_key: str) -> int:
    """The Last-Modified (ms) a record's row key was made from."""
    return _INVERT_BASE - int(row_key[:13])


def record_time(row_key: str) -> datetime:
    """The modification time a record's row key holds (to the millisecond)."""
    return datetime.fromtimestamp(modified_millis(row_key) / 1000, UTC)


def is_record_key(text: str) -> bool:
    """True for a string shaped like a record's row key (metadata from uploaders may lie)."""
    return bool(_RECORD_KEY.fullmatch(text))


def since_bound(since: datetime) -> str:
    """Upper bound of the record keys at or after ``since``."""
    # Before 1970 is everything; past the year 2286 (13 digits of ms) is nothing.
    millis = min(max(int(since.timestamp() * 1000), 0), _INVERT_BASE)
    return f"{_INVERT_BASE - millis:013d}-~"


def until_bound(until: datetime) -> str:
    """Lower bound of the record keys at or before ``until``."""
    millis = min(max(int(until.timestamp() * 1000), 0), _INVERT_BASE)
    return f"{_INVERT_BASE - millis:013d}-"


def _path_hash(blob: str) -> str:
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def blob_index_prefix(blob: str) -> str:
    """Key prefix of the blob-path index rows of one path."""
    return f"{_BLOB_PREFIX}{_path_hash(blob)}-"


def blob_index_key(blob: str, row_key: str) -> str:
    """Blob-path index row of one version: the prefix, then the record's key."""
    return blob_index_prefix(blob) + row_key


def message_key(message_id: str) -> str:
    """Message-id index row of a normalised F&O message id."""
    return _MESSAGE_PREFIX + message_id


def schedule_key(record_id: str) -> str:
    """Poll-schedule row of a record."""
    return SCHEDULE_PREFIX + record_id


def lease_key(name: str) -> str:
    """Lease row ``name``."""
    return _LEASE_PREFIX + name


def purge_key(name: str) -> str:
    """Purge row of a deleted record (its record id) or export record (its message id)."""
    return PURGE_PREFIX + name
