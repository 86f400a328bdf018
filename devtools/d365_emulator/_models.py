"""Configuration records, message states and the knobs of the emulator."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

# The service-protection texts of F&O, verbatim (typos included); see the reference spec, §14.
THROTTLE_MESSAGES: tuple[str, ...] = (
    "Number of requests exeeded the limit of 6000 over the time window of 300 seconds.",
    "Combined execution time of incoming requests exceeded limit of 1200 seconds over time "
    "window of 300 seconds. Decrease number of concurrent requests or reduce the duration of "
    "requests and try again later.",
    "Number of concurrent requests exceeded the limit of 52.",
    "This request could not be processed at this time due to system experiencing high "
    "resource utilization.",
)


def normalize_guid(text: str) -> str:
    """A GUID in canonical form (lower case, no braces).

    :raises ValueError: the text is not a GUID.
    """
    return str(uuid.UUID(text.strip().strip("{}")))


@dataclass(frozen=True)
class App:
    """An Entra application registration (service principal) known to the tenant.

    :param client_id: the application (client) id.
    :param client_secret: accepted secret; None when the app only uses a certificate.
    :param certificate_pem: PEM of the X.509 certificate whose key signs client assertions.
    """

    client_id: str
    client_secret: str | None = None
    certificate_pem: bytes | None = None

    def __repr__(self) -> str:
        return f"App(client_id={self.client_id!r})"


@dataclass(frozen=True)
class Job:
    """A recurring data job of the F&O environment.

    :param activity_id: the job id (GUID) used in the connector URLs.
    :param entity: the data project's entity name; empty for a data-package job.
    :param allowed_client_ids: the job's authorization policy (client ids).
    :param enabled: a disabled job accepts messages but does not process them.
    :param company: the legal entity of the user the job runs as.
    :param use_company_from_message: honour the `company` query parameter.
    :param data_project: the DMF project name; the first part of execution ids.
    """

    activity_id: str
    entity: str = ""
    name: str = ""
    allowed_client_ids: tuple[str, ...] = ()
    enabled: bool = True
    company: str = "USMF"
    use_company_from_message: bool = True
    data_project: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "activity_id", normalize_guid(self.activity_id))
        if not self.data_project:
            project = "".join((self.name or self.entity or "Package").split())
            object.__setattr__(self, "data_project", project)

    @property
    def is_data_package(self) -> bool:
        """True when the job takes data packages (no entity)."""
        return not self.entity


class MessageState(enum.StrEnum):
    """The message statuses F&O documents for GetMessageStatus."""

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


# Spellings of Microsoft's Recurring Integrations Scheduler enum, served with `status_variants`.
STATUS_VARIANTS: Mapping[str, str] = {
    MessageState.PREPROCESSING.value: "PreProcessing",
    MessageState.POST_PROCESSING_FAILED.value: "PostProcessingError",
}


class MessageIdFormat(enum.StrEnum):
    """How the enqueue response spells the message id."""

    QUOTED = "quoted"
    BARE = "bare"
    BRACED = "braced"
    UPPER = "upper"
    OBJECT = "object"


@dataclass(frozen=True)
class ExecutionErrorRecord:
    """One row of GetExecutionErrors."""

    record_id: str
    field: str
    message: str

    @classmethod
    def coerce(cls, value: ExecutionErrorRecord | Mapping[str, str]) -> ExecutionErrorRecord:
        """Accept a record or a mapping with F&O's keys (RecordId, Field, ErrorMessage)."""
        if isinstance(value, ExecutionErrorRecord):
            return value
        return cls(
            record_id=str(value.get("RecordId", "")),
            field=str(value.get("Field", "")),
            message=str(value.get("ErrorMessage", "")),
        )

    def to_wire(self) -> dict[str, str]:
        """The JSON object F&O puts in the execution-errors array."""
        return {"RecordId": self.record_id, "Field": self.field, "ErrorMessage": self.message}


@dataclass(frozen=True)
class Outcome:
    """The terminal result of processing one message."""

    status: str
    errors: tuple[ExecutionErrorRecord, ...] = ()
    summary: str = "Succeeded"


@dataclass(frozen=True)
class Message:
    """A snapshot of one message as the emulator sees it now."""

    message_id: str
    activity_id: str
    entity: str
    company: str
    external_id: str | None
    state: str
    execution_id: str | None
    errors: tuple[ExecutionErrorRecord, ...]
    body_path: str | None
    body_size: int
    enqueued_at: datetime

    def __repr__(self) -> str:
        return f"Message(message_id={self.message_id!r}, state={self.state!r})"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator received (Authorization redacted, body kept only when small)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body_size: int
    body_sha256: str
    body: bytes | None
    operation: str
    status: int | None

    def __repr__(self) -> str:
        return f"RecordedRequest({self.method} {self.path} -> {self.status})"


@dataclass
class Knobs:
    """Fault and timing knobs; mutate `emu.knobs` in a test, `emu.reset()` restores defaults.

    Bursts hit the next N F&O calls; fractions draw from a seeded generator so runs repeat.
    `operations` limits the faults (and `body_read_pause_seconds`) to some operations (see
    `OPERATIONS`); None means all.

    `body_read_pause_seconds`: after the first read (up to 64 KiB) of an F&O call's request
    body, stop reading it for this long, then read the rest: an F&O that takes a large upload
    slowly (back-pressure); the client's sends block meanwhile. Bodies of one read are not
    delayed.

    `download_break_burst`: the next N downloads send their headers (full Content-Length)
    and `download_break_after_bytes` of the file, then drop the connection: an export
    download that breaks part way. `download_mib_per_s`: downloads are sent no faster than
    this (0: as fast as loopback goes), like an environment reached over a WAN link.
    `download_location_origin`: the ``scheme://host:port`` the dequeue's `DownloadLocation`
    names instead of the emulator's own (an F&O that hands out a location elsewhere).
    `dequeue_without_file`: dequeue answers
    `IsDownLoadFileExist` false with a `FileDownLoadErrorMessage` (the spec's "no file
    uploaded to the blob" case, e.g. with Prevent upload when zero records; shape UNCONFIRMED).

    `token_delay_seconds`: the Entra token endpoint answers that much later (a hung Entra);
    `reset()` ends a wait under way.

    `odata_values`: by action name (e.g. "GetMessageStatus"), the JSON `value` to answer
    instead of the real one, of any JSON type (an object, a list, a number, None for null),
    to test clients against answers F&O's docs do not promise. Assign a new mapping.
    `odata_bodies`: by action name, the raw text of a 200 answer instead of the real one
    (junk an F&O or a proxy in front of it may send: not JSON, or JSON nested too deeply).

    Package API (see `_packages`): `import_call_seconds` makes ImportFromPackage answer that
    much later (real time; the import goes on if the client gives up);
    `import_refuse_burst` refuses the next N ImportFromPackage calls as parallel ones;
    `import_own_execution_id`: ImportFromPackage ignores the execution id sent and answers one
    of its own (``<project>-<time>-<32 HEX>``), as when the caller sends none;
    `package_run_seconds` is how long an execution stays Executing (emulator clock);
    `execution_not_found_seconds` answers 400 "were not found" for that long after the call;
    `error_keys_seconds` is how long a target error keys file is "still generating".

    Blob endpoint (see `_blobs`): `sas_version` is the storage version (``sv``) of the SAS
    URLs handed out, whose Put Blob and Put Block limits the endpoint enforces;
    `put_blob_max_bytes` lowers the Put Blob limit (None: the version's, as Azure's).

    Package export (see `_package_exports`): `export_projects` maps an export data project
    to its entity; `export_nested_values` answers ExportToPackage and GetExportedPackageUrl
    nested, as the docs show; `package_export_seconds` is how long an export stays Executing
    (emulator clock); `package_export_fail` makes the next exports end Failed;
    `package_url_delay_seconds` keeps the package URL empty that long after success;
    `export_rows` is the rows of the package's file; `export_package_path` serves that file
    as every package instead.
    User-based service protection limits (see `_limits`; None: no limit):
    `user_max_concurrent` F&O requests of one user at once, `user_max_requests` in a sliding
    window of `user_window_seconds`; 429 past either, with F&O's text and a Retry-After that
    doubles (up to `user_retry_after_max`) while the user calls before it has passed
    (`user_retry_after_growth=False`: no growth, only the limits refuse).
    """

    latency_ms: int = 0
    operations: frozenset[str] | None = None
    throttle_burst: int = 0
    throttle_fraction: float = 0.0
    retry_after: int | None = 1
    retry_after_as_date: bool = False
    throttle_message: str = THROTTLE_MESSAGES[0]
    error_burst: int = 0
    error_fraction: float = 0.0
    error_status: int = 503
    drop_before_body_burst: int = 0
    drop_after_body_burst: int = 0
    drop_fraction: float = 0.0
    max_enqueue_bytes: int | None = None
    body_read_pause_seconds: float = 0.0
    odata_values: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    odata_bodies: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    enqueued_seconds: float = 2.0
    preprocessing_seconds: float = 3.0
    processing_seconds: float = 5.0
    status_variants: bool = False
    message_id_format: MessageIdFormat = MessageIdFormat.QUOTED
    execution_errors_raw: bool = False
    download_location_http: bool = False
    download_location_origin: str | None = None
    download_break_burst: int = 0
    dequeue_without_file: bool = False
    download_mib_per_s: float = 0.0
    download_break_after_bytes: int = 64 * 1024
    unknown_ids_not_found: bool = False
    redelivery_seconds: float = 1800.0
    token_lifetime_seconds: int = 3600
    token_delay_seconds: float = 0.0
    seed: int = 0
    import_call_seconds: float = 0.0
    import_refuse_burst: int = 0
    import_own_execution_id: bool = False
    package_run_seconds: float = 2.0
    execution_not_found_seconds: float = 0.0
    error_keys_seconds: float = 1.0
    sas_version: str = "2020-10-02"
    put_blob_max_bytes: int | None = None
    export_projects: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType(
            {"CustomersExport": "CustomersV3", "GeneralJournalExport": "General journal"}
        )
    )
    export_nested_values: bool = False
    package_export_seconds: float = 2.0
    package_export_fail: bool = False
    package_url_delay_seconds: float = 1.0
    export_rows: int = 3
    export_package_path: str | None = None
    user_max_concurrent: int | None = None
    user_max_requests: int | None = None
    user_window_seconds: float = 300.0
    user_retry_after_max: int = 300
    user_retry_after_growth: bool = True

    def copy(self) -> Knobs:
        """An independent copy."""
        return dataclasses.replace(self)


# Names of the F&O operations, as used in `Knobs.operations` and `RecordedRequest.operation`.
OPERATIONS: frozenset[str] = frozenset(
    {
        "enqueue",
        "dequeue",
        "ack",
        "download",
        "jobstatus",
        "GetMessageStatus",
        "GetExecutionIdByMessageId",
        "GetExecutionErrors",
        "GetExecutionSummaryStatus",
        "GetAzureWriteUrl",
        "ImportFromPackage",
        "GetImportStagingErrorFileUrl",
        "GenerateImportTargetErrorKeysFile",
        "GetImportTargetErrorKeysFileUrl",
        "ExportToPackage",
        "GetExportedPackageUrl",
        "blob_put",
        "blob_block",
        "blob_block_list",
        "blob_get",
    }
)


@dataclass
class ForcedOutcomes:
    """Outcomes set with `Emulator.set_outcome`, by message id and by activity id."""

    by_message: dict[str, Outcome] = field(default_factory=dict)
    by_activity: dict[str, Outcome] = field(default_factory=dict)
