"""The status model: what happened to every file, in one partition of one Azure table.

- :mod:`._actor`: :class:`Actor`, who asked for an operator action;
- :mod:`._model`: value types and states of the files' records;
- :mod:`._keys`: the row keys of the files' partition;
- :mod:`._properties`: how a value becomes a row property (times, errors, histories, lists);
- :mod:`._codec`: the rows of a record, its schedule entry, its index rows;
- :mod:`._fit`: what a row of Azure Tables holds at most, and how a value is made to fit;
- :mod:`._overflow`: what did not fit a row, kept whole in blobs of the errors container;
- :mod:`._table`: the table client behind one error translator;
- :mod:`._writes`: conditional writes that recognise their own after a lost answer;
- :mod:`._lease`: :class:`Lease`, every lease of the app (the poll tick, the package import,
  each export route's tick), one row layout;
- :mod:`._page`: :class:`Page`, one page of a listing, and the one continuation-token codec;
- :mod:`._backoff`: the poll back-off;
- :mod:`._schedule`: the poll schedule's entries;
- :mod:`._listing`: the table query of a records listing (its period, its filters);
- :mod:`._store`: :class:`TrackingStore`, the facade: records with their indexes and
  schedule entries, written together, and the errors blob;
- :mod:`._export_model`, :mod:`._export_rows`, :mod:`._exports`: :class:`ExportStore`, the
  export records, in a partition of their own;
- :mod:`._deletions`, :mod:`._purge`, :mod:`._record_expiry`, :mod:`._export_expiry`:
  :class:`RecordRetention` and :class:`ExportRetention`, the rows past their retention
  deleted in batches, their blobs after them.
"""

from ._actor import Actor, ActorKind
from ._backoff import Backoff
from ._codec import to_entity
from ._export_expiry import ExportRetention
from ._export_model import ExportRecord, ExportState
from ._export_rows import EXPORTS_PARTITION
from ._exports import ExportStore
from ._keys import clean_etag, is_record_key, quoted_etag, record_id_for, record_row_key
from ._lease import LEASE_MARGIN, Lease, LeaseHeld, LeaseHeldError, lease_for_call
from ._model import (
    ClaimResult,
    ConcurrencyError,
    FailureKind,
    PendingEntry,
    TrackedFile,
    TrackingState,
    TrackingStoreError,
    error_to_dict,
    utcnow,
)
from ._page import Page
from ._record_expiry import RecordRetention
from ._schedule import BATCH_SIZE, Schedule
from ._store import UNSCHEDULE, TrackingStore

__all__ = [
    "BATCH_SIZE",
    "EXPORTS_PARTITION",
    "LEASE_MARGIN",
    "UNSCHEDULE",
    "Actor",
    "ActorKind",
    "Backoff",
    "ClaimResult",
    "ConcurrencyError",
    "ExportRecord",
    "ExportRetention",
    "ExportState",
    "ExportStore",
    "FailureKind",
    "Lease",
    "LeaseHeld",
    "LeaseHeldError",
    "Page",
    "PendingEntry",
    "RecordRetention",
    "Schedule",
    "TrackedFile",
    "TrackingState",
    "TrackingStore",
    "TrackingStoreError",
    "clean_etag",
    "error_to_dict",
    "is_record_key",
    "lease_for_call",
    "quoted_etag",
    "record_id_for",
    "record_row_key",
    "to_entity",
    "utcnow",
]
