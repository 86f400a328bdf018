"""The status model: what happened to every file, in one partition of one Azure table.

- :mod:`._actor`: :class:`Actor`, who asked for an operator action;
- :mod:`._model`: value types and states of the files' records (:mod:`._states`: the one
  lookup of a state by its text);
- :mod:`._keys`: the row keys of the files' partition;
- :mod:`._properties`: how a value becomes a row property (times, errors, histories, lists);
- :mod:`._codec`: the rows of a record, its schedule entry, its index rows;
- :mod:`._fit`: what a row of Azure Tables holds at most, and how a value is made to fit;
- :mod:`._overflow`: what did not fit a row, kept whole in blobs of the errors container;
- :mod:`._table`: the table client behind one error translator;
- :mod:`._writes`: conditional writes that recognise their own after a lost answer;
- :mod:`._line`: the ordered lines' rows (each line's head, its waiting files);
- :mod:`._lease`: :class:`Lease`, every lease of the app (the poll tick, the package import,
  each export route's tick), one row layout;
- :mod:`._page`: :class:`Page`, one page of a listing, and the one continuation-token codec;
- :mod:`._backoff`: the poll back-off;
- :mod:`._schedule`: the poll schedule's entries;
- :mod:`._listing`: the table query of a records listing (its period, its filters);
- :mod:`._store`: :class:`TrackingStore`, the facade: records with their indexes and
  schedule entries, written together, and the errors blob;
- :mod:`._budget`: :class:`SharedBudget`, the F&O call budget all instances share (partition
  ``budget``);
- :mod:`._export_model`, :mod:`._export_rows`, :mod:`._exports`: :class:`ExportStore`, the
  export records, in a partition of their own (:mod:`._export_partition`: what both export
  stores share);
- :mod:`._package_export_model`, :mod:`._package_export_rows`, :mod:`._package_exports`:
  :class:`PackageExportStore`, the scheduled package exports, in the same partition;
- :mod:`._audit_model`, :mod:`._audit_rows`, :mod:`._audit`: :class:`AuditStore`, the audit
  trail of operator actions, in a partition of its own.
- :mod:`._deletions`, :mod:`._purge`, :mod:`._record_expiry`, :mod:`._export_expiry`:
  :class:`RecordRetention` and :class:`ExportRetention`, the rows past their retention
  deleted in batches, their blobs after them.
"""

from ._actor import Actor, ActorKind
from ._audit import AuditStore
from ._audit_model import AuditEntry, AuditOutcome
from ._audit_rows import AUDIT_PARTITION
from ._backoff import Backoff
from ._budget import (
    BUDGET_PARTITION,
    FALLBACK_INSTANCES,
    BudgetLimits,
    SharedBudget,
    split_concurrency,
)
from ._codec import to_entity
from ._export_expiry import ExportRetention
from ._export_model import ExportRecord, ExportState
from ._export_rows import EXPORTS_PARTITION
from ._exports import ExportStore
from ._keys import clean_etag, is_record_key, quoted_etag, record_id_for, record_row_key
from ._lease import (
    LEASE_MARGIN,
    Lease,
    LeaseHeld,
    LeaseHeldError,
    LeaseKeeper,
    LeaseLostError,
    lease_for_call,
)
from ._line import LineHead, Lines, Waiter, line_id, order_of
from ._model import (
    IMPORT_CALL_STATUS,
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
from ._package_export_model import PACKAGE_KIND, PackageExportRecord, PackageExportState, RouteRun
from ._package_export_rows import is_package_key
from ._package_exports import PackageExportStore
from ._page import Page
from ._record_expiry import RecordRetention
from ._schedule import BATCH_SIZE, Schedule
from ._store import UNSCHEDULE, TrackingStore

__all__ = [
    "AUDIT_PARTITION",
    "BATCH_SIZE",
    "BUDGET_PARTITION",
    "EXPORTS_PARTITION",
    "FALLBACK_INSTANCES",
    "IMPORT_CALL_STATUS",
    "LEASE_MARGIN",
    "PACKAGE_KIND",
    "UNSCHEDULE",
    "Actor",
    "ActorKind",
    "AuditEntry",
    "AuditOutcome",
    "AuditStore",
    "Backoff",
    "BudgetLimits",
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
    "LeaseKeeper",
    "LeaseLostError",
    "LineHead",
    "Lines",
    "PackageExportRecord",
    "PackageExportState",
    "PackageExportStore",
    "Page",
    "PendingEntry",
    "RecordRetention",
    "RouteRun",
    "Schedule",
    "SharedBudget",
    "TrackedFile",
    "TrackingState",
    "TrackingStore",
    "TrackingStoreError",
    "Waiter",
    "clean_etag",
    "error_to_dict",
    "is_package_key",
    "is_record_key",
    "lease_for_call",
    "line_id",
    "order_of",
    "quoted_etag",
    "record_id_for",
    "record_row_key",
    "split_concurrency",
    "to_entity",
    "utcnow",
]
