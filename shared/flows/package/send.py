"""A claimed file through the package path up to ImportFromPackage, called at most once."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from datetime import datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient

from shared import telemetry
from shared.clients.d365 import D365ConnectionError, D365Error, D365HttpError
from shared.config import API_PACKAGE, ImportRoute, ImportRoutes
from shared.errors import AppError, is_safe, safe_text
from shared.flows.archive import InboundContainer
from shared.flows.deadline import DeadlineStream, SendDeadlineError, send_deadline
from shared.flows.failures import ImportVerdict, classify_import_failure, upload_refused
from shared.flows.outcomes import Outcomes
from shared.flows.package.importer import PackageImporter, execution_id_for
from shared.flows.package.manifest import PackageError, TemplateChangedError, TemplateError
from shared.flows.policies import EnqueuePolicy
from shared.tracking import (
    IMPORT_CALL_STATUS,
    ConcurrencyError,
    LeaseHeldError,
    TrackedFile,
    TrackingState,
    TrackingStore,
)
from shared.zips import ZipRefusedError

__all__ = ["PackageSender"]

_LOGGER = logging.getLogger(__name__)


class _UnexpectedError(AppError):
    """An error no step foresaw, before F&O was asked to import: shown by its type (and its
    text only when it is one of ours), never by a text that may hold a URL or a value."""

    def __init__(self, cause: Exception) -> None:
        self.shown = _shown_error(cause)
        super().__init__(
            f"the package upload failed unexpectedly ({self.shown}); F&O imported nothing. If "
            "it happens again, report it with the app's log of this file"
        )


def _shown_error(exc: Exception) -> str:
    """:func:`shared.errors.safe_text`, with the module of a type that is not a builtin
    (``struct.error`` says more than ``error``)."""
    kind = type(exc)
    if is_safe(exc) or kind.__module__ == "builtins":
        return safe_text(exc)
    return f"{kind.__module__}.{kind.__qualname__}"


class PackageSender:
    """Takes a claimed file of a package route through steps 2-6 of :mod:`shared.flows.package`.

    :param store: the tracking store.
    :param routes: the route table.
    :param inbound: gives the inbound container.
    :param outcomes: the final writes.
    :param packages: the package path; without it such files end ``EnqueueFailed`` saying the
        package path is not set up.
    :keyword policy: the send's deadline (``answer_timeout``).
    :keyword clock: the time source (UTC).
    """

    def __init__(
        self,
        store: TrackingStore,
        routes: ImportRoutes,
        inbound: InboundContainer,
        outcomes: Outcomes,
        packages: PackageImporter | None,
        *,
        policy: EnqueuePolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._routes = routes
        self._inbound = inbound
        self._outcomes = outcomes
        self._packages = packages
        self._policy = policy
        self._clock = clock

    def switch_to_package(
        self, record: TrackedFile, route: ImportRoute, exc: D365HttpError
    ) -> TrackedFile:
        """F&O refused the enqueue with 413 (so it has nothing): take the package path."""
        record = self._outcomes.persist(
            record,
            over_final=False,
            api=API_PACKAGE,
            definition_group=route.definition_group,
            send_started_at=None,
            api_note=(
                f"F&O refused the enqueue as too large (HTTP {exc.status_code}): imported "
                f"through the package API into {route.definition_group!r} (on_too_large)"
            ),
        )
        if record.state.is_terminal:
            return record
        return self.send(self._inbound.source(record.blob), record)

    def send(self, blob: BlobClient, record: TrackedFile) -> TrackedFile:
        """Check the import lease is free, upload (cut short like the enqueue send when it would
        outlive the claim's lease), take the import lease, write ``Importing`` with our
        execution id, call ImportFromPackage once. Every step's failure is in
        shared.flows.package's docstring."""
        route = self._routes.get(record.route or "")
        if self._packages is None or route is None or not route.definition_group:
            return self._outcomes.finish(
                record,
                state=TrackingState.ENQUEUE_FAILED,
                last_error=(
                    f"route {record.route!r} takes the package API, but it is not set up here "
                    "(the route is gone, or has no definition_group); fix D365_ROUTES and "
                    "upload the file again"
                ),
            )
        record = self._store.update(record, enqueue_attempts=record.enqueue_attempts + 1)
        deadline = send_deadline(
            record, answer_timeout=self._policy.answer_timeout, clock=self._clock
        )
        try:
            self._packages.check_lease()
            upload = self._packages.upload(
                blob, record, route, guard=lambda stream: DeadlineStream(stream, deadline)
            )
            lease = self._packages.acquire_lease()
        except (
            AzureError,
            D365Error,
            TemplateError,
            TemplateChangedError,
            PackageError,
            ZipRefusedError,
            LeaseHeldError,
            SendDeadlineError,
            # Left after the importer's own checks: a package stream that ended early.
            ValueError,
        ) as exc:
            return self._upload_failed(record, exc)
        except Exception as exc:
            # Last resort, before F&O was asked to import: a defect nobody foresaw must not
            # leave the file Received without a cause and end "last error: none".
            unexpected = _UnexpectedError(exc)
            where = traceback.extract_tb(exc.__traceback__)[-1]
            _LOGGER.error(
                "package upload failed unexpectedly blob=%s record=%s: %s at %s:%s",
                record.blob,
                record.record_id,
                unexpected.shown,
                where.filename,
                where.lineno,
                extra=telemetry.record_ids(record),
            )
            return self._outcomes.retry_later(record, unexpected)
        try:
            # Conditional on the claim as read: a recovery that took the file over meanwhile
            # wins, and this worker stops before calling F&O.
            importing = self._store.update(
                record,
                state=TrackingState.IMPORTING,
                execution_id=execution_id_for(record),
                package_entities=upload.entities,
                d365_status=IMPORT_CALL_STATUS,
                enqueued_at=self._clock(),
                lease_until=None,
                last_error=None,
                poll_count=0,
                schedule_at=self._clock() + self._packages.policy.first_poll_delay,
            )
        except ConcurrencyError:
            self._packages.release_lease(lease)
            _LOGGER.warning(
                "claim taken over by recovery before ImportFromPackage; stopping blob=%s",
                record.blob,
                extra=telemetry.record_ids(record),
            )
            return self._store.get(record.row_key) or record
        except BaseException:
            self._packages.release_lease(lease)
            raise
        return self._import(importing, upload, route, lease)

    def _upload_failed(self, record: TrackedFile, exc: Exception) -> TrackedFile:
        """A failure before ImportFromPackage (F&O imported nothing): retried later unless
        waiting will not cure it; then the file ends ``EnqueueFailed`` with the fix."""
        if isinstance(exc, ResourceModifiedError | ResourceNotFoundError):
            return self._outcomes.blob_changed(record)
        if not upload_refused(exc):
            return self._outcomes.retry_later(record, exc)
        _LOGGER.error(
            "package upload refused blob=%s record=%s: %s",
            record.blob,
            record.record_id,
            exc,
            extra=telemetry.record_ids(record),
        )
        if isinstance(exc, ZipRefusedError):
            cause = f"{exc}; F&O imported nothing: {exc.fix}"
        elif isinstance(exc, TemplateError | PackageError):
            cause = f"{exc}"
        else:
            cause = f"the package upload was refused, so F&O imported nothing: {exc} Fix the cause"
        return self._outcomes.finish(
            record,
            state=TrackingState.ENQUEUE_FAILED,
            last_error=f"{cause}; then resubmit the file (or upload it again).",
        )

    def _import(
        self, record: TrackedFile, upload: Any, route: ImportRoute, lease: Any
    ) -> TrackedFile:
        assert self._packages is not None
        if record.enqueue_attempts > 1:
            try:
                known = self._packages.is_known(record)
            except D365Error as exc:
                self._packages.release_lease(lease)
                return self._outcomes.retry_later(
                    record, exc, state=TrackingState.RECEIVED, execution_id=None
                )
            if known:
                # An earlier attempt's refusal hid an import F&O took: follow it, never re-send.
                self._packages.release_lease(lease)
                _LOGGER.warning(
                    "ImportFromPackage not called again: F&O knows execution_id=%s blob=%s",
                    record.execution_id,
                    record.blob,
                    extra=telemetry.record_ids(record),
                )
                return record
        try:
            answered = self._packages.import_package(upload, record, route)
        except D365Error as exc:
            # Without an answer F&O may still be in that call: its lease runs out on its own.
            if not isinstance(exc, D365ConnectionError):
                self._packages.release_lease(lease)
            return self._import_failed(record, exc, classify_import_failure(exc))
        self._packages.release_lease(lease)
        if answered != record.execution_id:
            record = self._follow_answered_execution(record, answered)
        _LOGGER.info(
            "package import started blob=%s execution_id=%s project=%s",
            record.blob,
            record.execution_id,
            route.definition_group,
            extra=telemetry.record_ids(record, state=TrackingState.IMPORTING.value),
        )
        telemetry.record_outcome(TrackingState.IMPORTING.value, record.route)
        return record

    def _follow_answered_execution(self, record: TrackedFile, answered: str) -> TrackedFile:
        """F&O answered ImportFromPackage with another execution id than the one sent: the
        import runs under F&O's, so that is the one followed; ours is kept beside it. If this
        write never lands, the record follows ours, which F&O does not know, and ends
        ``TimedOut`` at the age limit saying the import may not have started (never twice)."""
        sent = record.execution_id
        _LOGGER.warning(
            "ImportFromPackage answered execution_id=%s for sent %s; following F&O's blob=%s",
            answered,
            sent,
            record.blob,
            extra=telemetry.record_ids(record, execution_id=answered),
        )
        return self._outcomes.persist(
            record, over_final=False, execution_id=answered, sent_execution_id=sent
        )

    def _import_failed(self, record: TrackedFile, exc: D365Error, verdict: str) -> TrackedFile:
        if verdict == ImportVerdict.FOLLOW:
            _LOGGER.warning(
                "ImportFromPackage gave no clear answer; following execution_id=%s blob=%s: %s",
                record.execution_id,
                record.blob,
                exc,
                extra=telemetry.record_ids(record),
            )
            return self._outcomes.persist(
                record,
                over_final=False,
                last_error=(
                    f"ImportFromPackage gave no clear answer ({exc}); F&O may be importing: "
                    f"followed by execution id {record.execution_id}, not re-sent"
                ),
            )
        if verdict == ImportVerdict.RETRY:
            # F&O did not take it: back to Received, sent again after a back-off.
            return self._outcomes.retry_later(
                record, exc, state=TrackingState.RECEIVED, execution_id=None
            )
        _LOGGER.error(
            "ImportFromPackage refused blob=%s: %s",
            record.blob,
            exc,
            extra=telemetry.record_ids(record),
        )
        # Must land: the poller may have re-anchored the Importing record during the call.
        return self._outcomes.finish(
            record,
            must_land=True,
            state=TrackingState.IMPORT_FAILED,
            d365_status="ImportFromPackage refused",
            last_error=str(exc),
        )
