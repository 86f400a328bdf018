"""The values the F&O client returns: its records, with their states."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Self

__all__ = [
    "AzureWriteUrl",
    "DequeuedMessage",
    "EnqueueResult",
    "ExecutionError",
    "ExecutionErrors",
    "ExecutionSummaryStatus",
    "ExecutionSummaryStatusResult",
    "MessageStatus",
    "MessageStatusResult",
]


class _TolerantStrEnum(StrEnum):
    """A str enum parsed case-insensitively, with spelling aliases; unknown text gives None."""

    @classmethod
    def _aliases(cls) -> dict[str, str]:
        return {}

    @classmethod
    def parse(cls, text: str | None) -> Self | None:
        """The member named by `text` (any case, surrounding whitespace ignored), else None."""
        if text is None:
            return None
        key = text.strip().lower()
        key = cls._aliases().get(key, key)
        for member in cls:
            if member.value.lower() == key:
                return member
        return None


class MessageStatus(_TolerantStrEnum):
    """Status of an enqueued or exported message, as GetMessageStatus reports it."""

    ENQUEUED = "Enqueued"
    DEQUEUED = "Dequeued"
    DOWNLOADED = "Downloaded"
    ACKED = "Acked"
    PREPROCESSING = "Preprocessing"
    PROCESSING = "Processing"
    PROCESSED = "Processed"
    PROCESSED_WITH_ERRORS = "ProcessedWithErrors"
    PRE_PROCESSING_ERROR = "PreProcessingError"
    POST_PROCESSING_FAILED = "PostProcessingFailed"

    @classmethod
    def _aliases(cls) -> dict[str, str]:
        # The Recurring Integrations Scheduler's enum says PostProcessingError (and PreProcessing,
        # which the case-insensitive match covers) where the docs say PostProcessingFailed.
        return {"postprocessingerror": "postprocessingfailed"}

    @property
    def is_terminal(self) -> bool:
        """True when F&O will not change this import message's status any more."""
        return self in _TERMINAL_MESSAGE_STATUSES


_TERMINAL_MESSAGE_STATUSES = frozenset(
    {
        MessageStatus.PROCESSED,
        MessageStatus.PROCESSED_WITH_ERRORS,
        MessageStatus.PRE_PROCESSING_ERROR,
        MessageStatus.POST_PROCESSING_FAILED,
    }
)


class ExecutionSummaryStatus(_TolerantStrEnum):
    """DMF execution summary status (`DMFExecutionSummaryStatus`)."""

    UNKNOWN = "Unknown"
    NOT_RUN = "NotRun"
    EXECUTING = "Executing"
    SUCCEEDED = "Succeeded"
    PARTIALLY_SUCCEEDED = "PartiallySucceeded"
    FAILED = "Failed"
    CANCELED = "Canceled"

    @classmethod
    def _aliases(cls) -> dict[str, str]:
        return {"cancelled": "canceled"}

    @property
    def is_terminal(self) -> bool:
        """True for a final outcome. `Unknown` is not: clients disagree on it, so keep polling."""
        return self in _TERMINAL_SUMMARY_STATUSES


_TERMINAL_SUMMARY_STATUSES = frozenset(
    {
        ExecutionSummaryStatus.SUCCEEDED,
        ExecutionSummaryStatus.PARTIALLY_SUCCEEDED,
        ExecutionSummaryStatus.FAILED,
        ExecutionSummaryStatus.CANCELED,
    }
)


@dataclass(frozen=True)
class EnqueueResult:
    """The message F&O created for an enqueued file."""

    message_id: str
    """Lower-case GUID without quotes or braces: use it as a key and in later calls."""
    raw_message_id: str
    """The response body exactly as F&O sent it."""


@dataclass(frozen=True)
class MessageStatusResult:
    """GetMessageStatus answer: the parsed status (None when unknown to us) and F&O's text."""

    status: MessageStatus | None
    raw: str

    @property
    def is_terminal(self) -> bool:
        """True when the status is a final one; unknown values are not final."""
        return self.status is not None and self.status.is_terminal


@dataclass(frozen=True)
class ExecutionSummaryStatusResult:
    """GetExecutionSummaryStatus answer: the parsed status (None when unknown) and F&O's text."""

    status: ExecutionSummaryStatus | None
    raw: str
    not_found: bool = False
    """F&O answered that the execution "were not found" (not created yet, soon after
    ImportFromPackage): no status yet."""

    @property
    def is_terminal(self) -> bool:
        """True when the status is a final one; unknown values are not final."""
        return self.status is not None and self.status.is_terminal


@dataclass(frozen=True)
class ExecutionError:
    """One row-level error of a DMF execution."""

    record_id: str
    field: str
    message: str


@dataclass(frozen=True)
class ExecutionErrors:
    """GetExecutionErrors answer. `raw` is always F&O's text; `strict` is False when the
    strict JSON parse failed and the tolerant parser produced `errors`."""

    errors: tuple[ExecutionError, ...]
    raw: str = field(repr=False)
    strict: bool = True


@dataclass(frozen=True)
class DequeuedMessage:
    """An exported message handed out by dequeue; `raw` is the body, posted back by ack."""

    correlation_id: str
    pop_receipt: str = field(repr=False)
    download_location: str
    is_download_file_exist: bool | None = None
    file_download_error_message: str | None = None
    last_dequeue_date_time: str | None = None
    raw: str = field(default="", repr=False)


@dataclass(frozen=True)
class AzureWriteUrl:
    """GetAzureWriteUrl answer: where to PUT a package. `url` carries a SAS token (a secret
    while it lives): it is kept out of `repr` and of every log line and error text."""

    blob_id: str
    """The blob's id, braces and quotes stripped (lower case when it is a GUID)."""
    url: str = field(repr=False)
