"""One look at a package import's execution, with what it left behind once it has ended."""

from __future__ import annotations

import functools
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from azure.core.exceptions import AzureError
from azure.storage.blob import ContainerClient

from shared import telemetry
from shared.clients.d365 import D365Client, D365Error, ExecutionSummaryStatus
from shared.errors import AppError, is_safe, safe_text
from shared.flows.package.importer import execution_id_for
from shared.flows.package.manifest import ellipsize
from shared.flows.policies import PackagePolicy
from shared.tracking import TrackedFile, TrackingState, TrackingStore

__all__ = ["FollowResult", "ImportFollower"]

_LOGGER = logging.getLogger(__name__)
_FINAL_STATES = {
    ExecutionSummaryStatus.SUCCEEDED: TrackingState.PROCESSED,
    ExecutionSummaryStatus.PARTIALLY_SUCCEEDED: TrackingState.PROCESSED_WITH_ERRORS,
    ExecutionSummaryStatus.FAILED: TrackingState.IMPORT_FAILED,
    ExecutionSummaryStatus.CANCELED: TrackingState.IMPORT_CANCELED,
}
_WITH_ERROR_FILES = frozenset(
    {ExecutionSummaryStatus.PARTIALLY_SUCCEEDED, ExecutionSummaryStatus.FAILED}
)
_SPOOL_BYTES = 8 * 1024 * 1024
_NOT_REACHED_NAMES = 5


@dataclass(frozen=True)
class FollowResult:
    """One look at an execution: F&O's status text, and the record's final changes when the
    execution has ended (None: keep polling)."""

    raw: str
    final: dict[str, Any] | None = None


class ImportFollower:
    """Follows package imports (``Importing`` records) by execution id, for the poller.

    :param store: the tracking store (the row errors).
    :param client: the F&O client.
    :keyword errors_container: where error files are copied.
    :keyword policy: error-file timing.
    :keyword sleep: waits between error-file tries (tests pass a recorder).
    """

    def __init__(
        self,
        store: TrackingStore,
        client: D365Client,
        *,
        errors_container: ContainerClient | None = None,
        policy: PackagePolicy | None = None,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self._store = store
        self._client = client
        self._errors = errors_container
        self.policy = policy or PackagePolicy()
        self._sleep = sleep

    def follow(self, record: TrackedFile) -> FollowResult:
        """Read the execution's status; at its end, gather row errors and error files.

        F&O's outcome is final whatever happens to the details: the row errors and the error
        files are fetched best effort, and what could not be had is noted in ``last_error``
        (so a file whose error file answers 404 ends with F&O's outcome, not ``TimedOut``).
        The error files get ``policy.error_files_time`` at most: the entities left then are
        noted too.

        :raises D365Error: (a subclass of it) the status could not be read: poll again later.
        :raises AzureError: the row errors could not be stored, or the manifest's entity names
            could not be read (the blob they overflowed to): poll again later.
        """
        execution_id = record.execution_id or execution_id_for(record)
        result = self._client.get_execution_summary_status(execution_id)
        status = result.status
        if status is None or status not in _FINAL_STATES:
            return FollowResult(result.raw or ("not found yet" if result.not_found else ""))
        final: dict[str, Any] = {"state": _FINAL_STATES[status], "d365_status": result.raw}
        notes: list[str] = []
        try:
            errors = self._client.get_execution_errors(execution_id)
        except D365Error as exc:
            notes.append(_missing("the row errors (GetExecutionErrors)", execution_id, exc))
        else:
            final.update(self._store.store_errors(record, errors.errors, errors.raw))
        if status in _WITH_ERROR_FILES:
            final["error_files"] = self._error_files(record, execution_id, notes)
        if notes:
            final["last_error"] = "; ".join(notes)
        return FollowResult(result.raw, final)

    def _error_files(
        self, record: TrackedFile, execution_id: str, notes: list[str]
    ) -> tuple[str, ...]:
        """Copy each manifest entity's staging error file and target error keys file, best
        effort: one that cannot be had (a call failing, its URL refused or answering 404,
        still generating, its temporary copy failing) is noted in `notes`, never a reason to
        poll again; so are the entities left when ``policy.error_files_time`` has passed.

        :raises AzureError: the entity names could not be read.
        """
        spent = self.policy.error_files_time
        deadline = time.monotonic() + spent.total_seconds()
        locators = (
            ("staging-errors", self._client.get_import_staging_error_file_url),
            ("target-error-keys", functools.partial(self._keys_file_url, deadline=deadline)),
        )
        stored: list[str] = []
        entities = self._store.list_package_entities(record)
        for index, entity in enumerate(entities):
            if time.monotonic() > deadline:
                notes.append(_not_reached(entities[index:], spent, execution_id))
                break
            for kind, locate in locators:
                what = f"the {_FILE_KINDS[kind]} of {entity!r}"
                try:
                    url = locate(execution_id, entity)
                    if url:
                        stored.append(self._copy(record, entity, kind, url))
                except (AppError, D365Error, AzureError, OSError) as exc:
                    notes.append(_missing(what, execution_id, exc))
        return tuple(stored)

    def _keys_file_url(self, execution_id: str, entity: str, *, deadline: float) -> str | None:
        """The target error keys file's URL; None when F&O has no such file.

        :raises _StillGeneratingError: F&O was still writing it after ``error_file_tries``
            reads, or when the follow's time for error files (`deadline`) ran out.
        """
        if not self._client.generate_import_target_error_keys_file(execution_id, entity):
            return None
        tries = 0
        while True:
            url = self._client.get_import_target_error_keys_file_url(execution_id, entity)
            tries += 1
            if url:
                return url
            if tries >= self.policy.error_file_tries or time.monotonic() > deadline:
                break
            self._sleep(self.policy.error_file_pause)
        raise _StillGeneratingError(f"it was still being generated after {tries} tries")

    def _copy(self, record: TrackedFile, entity: str, kind: str, url: str) -> str:
        """Download a SAS file (no Authorization header) into the errors container."""
        if self._errors is None:
            raise AppError("error files need an errors container")
        safe = "".join(ch if ch.isalnum() else "-" for ch in entity).strip("-") or "entity"
        name = f"{record.record_id}/{safe}-{kind}.txt"
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
            size = self._client.download_sas_file(url, spool)
            spool.seek(0)
            self._errors.upload_blob(name, spool, length=size, overwrite=True)
        _LOGGER.info(
            "error file stored blob=%s entity=%s kind=%s bytes=%d",
            record.blob,
            entity,
            kind,
            size,
            extra=telemetry.record_ids(record),
        )
        return f"{self._errors.container_name}/{name}"


class _StillGeneratingError(AppError):
    """F&O was still writing a target error keys file when the importer stopped asking."""


_FILE_KINDS = {
    "staging-errors": "staging error file",
    "target-error-keys": "target error keys file",
}
_NOTE_CAUSE_CHARS = 400


def _missing(what: str, execution_id: str, exc: Exception) -> str:
    """The note for a detail of a finished execution that could not be had."""
    if isinstance(exc, _StillGeneratingError):
        cause = str(exc)
    elif isinstance(exc, OSError) and not is_safe(exc) and exc.strerror:
        # The spool file's own failure (a full disk): its system text names no path.
        cause = f"{type(exc).__name__} writing its temporary copy: {exc.strerror}"
    else:
        cause = safe_text(exc)
    cause = ellipsize(cause, _NOTE_CAUSE_CHARS)
    return f"{what}: not fetched ({cause}); get it in F&O (execution {execution_id})"


def _not_reached(entities: tuple[str, ...], spent: timedelta, execution_id: str) -> str:
    """The note for the entities whose error files a follow had no time left for."""
    names = ", ".join(repr(entity) for entity in entities[:_NOT_REACHED_NAMES])
    more = (
        f" and {len(entities) - _NOT_REACHED_NAMES:,} more"
        if len(entities) > _NOT_REACHED_NAMES
        else ""
    )
    return (
        f"the error files of {len(entities):,} entities ({names}{more}): not fetched (the "
        f"{spent.total_seconds():g} seconds one poll spends on error files ran out); get them "
        f"in F&O (execution {execution_id})"
    )
