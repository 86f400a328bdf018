"""The failure accounting of one export message: counted attempts, storage failures, giving up.

A failure of the message's own (F&O's download, the package, a target name taken, an untrusted
DownloadLocation) counts toward ``EXPORT_MAX_ATTEMPTS``; one of our own storage
(:class:`AzureError`) does not: an outage or a lost permission must not give up, and ack, every
message it meets.
"""

from __future__ import annotations

from collections.abc import Sequence

from azure.core.exceptions import AzureError

from shared.flows.export.events import CAUSE_MESSAGE, CAUSE_STORAGE, error_text, tell_failed
from shared.tracking import ExportRecord, ExportStore
from shared.zips import ZipRefusedError

__all__ = ["Failures", "kept_reason"]


class Failures:
    """Records the failures of export messages, and gives a message up when they are spent.

    :param store: the export records.
    :keyword max_attempts: failures of a message's own before it is given up
        (``EXPORT_MAX_ATTEMPTS``).
    """

    def __init__(self, store: ExportStore, *, max_attempts: int) -> None:
        self._store = store
        self._max_attempts = max_attempts

    def write_failed(
        self, record: ExportRecord, exc: Exception, committed: tuple[str, ...]
    ) -> ExportRecord | None:
        """Record a failed write: retried when F&O offers the message again, or given up
        (None, or the given-up record to acknowledge) once EXPORT_MAX_ATTEMPTS failures of
        the message's own are spent. ``committed``: the members an unzip committed before.

        A failure of our own storage (:class:`AzureError`) is retried without counting: an
        outage or a lost permission would otherwise give up, and ack, every message it met.
        """
        most = self._max_attempts
        if isinstance(exc, AzureError):
            self.fail(
                record,
                f"download not written: {error_text(exc)}; our storage failed, which does not "
                f"count toward EXPORT_MAX_ATTEMPTS ({record.failed_attempts} of {most} so far): "
                "retried when F&O offers it again",
                cause=CAUSE_STORAGE,
            )
            return None
        attempts = record.failed_attempts + 1
        if attempts < most:
            self.fail(
                record,
                f"download not written: {error_text(exc)}; retried when F&O offers it again "
                f"(attempt {attempts} of {most}, EXPORT_MAX_ATTEMPTS)",
                cause=CAUSE_MESSAGE,
            )
            return None
        why = (
            f"given up after {attempts} attempt{'s' if attempts != 1 else ''} "
            f"(EXPORT_MAX_ATTEMPTS) and acknowledged, so that F&O stops offering it; "
            f"{_what_was_kept(record.container, committed)}: F&O still has the export in the "
            "job's history (Data management > Job history), or run the export job again. The "
            f"last attempt: download not written: {error_text(exc)}"
        )
        return self.give_up(record, why, blobs=committed)

    def give_up(
        self,
        record: ExportRecord,
        reason: str,
        *,
        blobs: tuple[str, ...] = (),
        size: int | None = None,
    ) -> ExportRecord | None:
        """Record the message as given up for good (its acknowledgement follows), then log it
        as the ``export_failed`` event the alert reads; None when storage refused the record
        (recorded as a failure, not acked: it is tried, and given up, again at the next offer).
        """
        try:
            given_up = self._store.gave_up(record, reason, blobs=blobs, size=size)
        except AzureError as exc:
            self.fail(
                record,
                f"to be given up, but the record of it was not written: {error_text(exc)}; "
                f"retried when F&O offers it again. Why: {reason}",
                cause=CAUSE_STORAGE,
            )
            return None
        tell_failed(record, reason, gave_up=True)
        return given_up

    def fail(self, record: ExportRecord, reason: str, *, cause: str) -> None:
        """Record ``reason`` (the message is retried when F&O offers it again), log it as the
        ``export_failed`` event the alert reads, and count it.

        :keyword cause: :data:`CAUSE_MESSAGE` (counts toward ``EXPORT_MAX_ATTEMPTS``),
            :data:`CAUSE_STORAGE` (our own storage: retried without a cap) or
            :data:`CAUSE_ACK`; the event's ``cause``.
        """
        tell_failed(record, reason, cause=cause)
        self._store.failed(record, reason, counted=cause == CAUSE_MESSAGE)


def _names(container: str, blobs: Sequence[str], *, at_most: int = 5) -> str:
    """``blobs`` as ``'<container>/<blob>'``, the first ``at_most`` of them and a count."""
    named = ", ".join(repr(f"{container}/{blob}") for blob in blobs[:at_most])
    more = len(blobs) - at_most
    return named + (f" and {more:,} more" if more > 0 else "")


def _what_was_kept(container: str, committed: Sequence[str]) -> str:
    """What a message given up after failed attempts left in its container."""
    if not committed:
        return "nothing was kept"
    count = len(committed)
    return (
        f"the package is incomplete: {count} member{'s' if count != 1 else ''} written before "
        f"the failure stay{'s' if count == 1 else ''} ({_names(container, committed)})"
    )


def kept_reason(
    refused: ZipRefusedError, container: str, blobs: Sequence[str], *, acked: bool = True
) -> str:
    """Why a package was given up, where it is (its last blob; before it the members written
    before the refusal), and what to do; ``acked``: a recurring export's message, which is
    acknowledged (a package export has nothing to acknowledge)."""
    kept, members = f"{container}/{blobs[-1]}", blobs[:-1]
    reason = f"{refused}. Given up: the package is kept unopened as {kept!r}"
    if acked:
        reason += ", and acknowledged so that F&O stops offering it"
    if members:
        reason += (
            f"; {len(members)} member{'s' if len(members) != 1 else ''} written before the "
            f"refusal stay{'s' if len(members) == 1 else ''} beside it "
            f"({_names(container, members)})"
        )
    if refused.setting:
        reason += (
            f"; if it is genuine, unzip it from there, and raise {refused.setting} for the "
            "next ones"
        )
    return reason
