"""The status model: what happened to every file, in one partition of one Azure table.

- :mod:`._model`: value types and states;
- :mod:`._codec`: the row layout, (de)serialisation and continuation tokens;
- :mod:`._fit`: what a row of Azure Tables holds at most, and how a value is made to fit;
- :mod:`._overflow`: what did not fit a row, kept whole in blobs of the errors container;
- :mod:`._table`: the table client behind one error translator;
- :mod:`._schedule`: the poll schedule's back-off, entries and lease;
- :mod:`._lease`: named lease rows (one ImportFromPackage at a time, one tick per export route);
- :mod:`._store`: :class:`TrackingStore`, the facade: records with their indexes and
  schedule entries, written together, and the errors blob.
- :mod:`._exports`: :class:`ExportStore`, the export records and export leases, in a
  partition of their own.
"""

from ._codec import clean_etag, is_record_key, quoted_etag, record_id_for
from ._exports import (
    EXPORTS_PARTITION,
    ExportPage,
    ExportRecord,
    ExportState,
    ExportStore,
)
from ._lease import Lease, LeaseHeld
from ._model import (
    ClaimResult,
    ConcurrencyError,
    Page,
    PendingEntry,
    PollLease,
    TrackedFile,
    TrackingState,
    TrackingStoreError,
    error_to_dict,
    utcnow,
)
from ._schedule import BATCH_SIZE, Backoff, Schedule
from ._store import UNSCHEDULE, TrackingStore

__all__ = [
    "BATCH_SIZE",
    "EXPORTS_PARTITION",
    "UNSCHEDULE",
    "Backoff",
    "ClaimResult",
    "ConcurrencyError",
    "ExportPage",
    "ExportRecord",
    "ExportState",
    "ExportStore",
    "Lease",
    "LeaseHeld",
    "Page",
    "PendingEntry",
    "PollLease",
    "Schedule",
    "TrackedFile",
    "TrackingState",
    "TrackingStore",
    "TrackingStoreError",
    "clean_etag",
    "error_to_dict",
    "is_record_key",
    "quoted_etag",
    "record_id_for",
    "utcnow",
]
