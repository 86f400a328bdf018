"""A local Dynamics 365 Finance and Operations environment for tests and `make run`.

One loopback HTTP(S) server plays both the F&O environment and its Microsoft Entra tenant, as
`shared/reference/d365-recurring-integrations-api.md` describes them:

- Entra: `/{tenant}/v2.0/.well-known/openid-configuration` (what MSAL reads when instance
  discovery is off), `/{tenant}/oauth2/v2.0/token` (client secret or certificate assertion;
  the v1 `/oauth2/token` with `resource` too) and `/{tenant}/discovery/v2.0/keys`. Tokens are
  RS256 JWTs with `aud` (scope minus `/.default`), `tid`, `appid`, `azp`, `oid`, `iss`,
  `iat`, `nbf`, `exp`; their expiry uses real time (MSAL caches by it), not the emulator
  clock. A wrong secret and an unknown client both answer 401 `invalid_client`
  (AADSTS7000215 / AADSTS700016), an unknown tenant 400 AADSTS90002.
  `knobs.token_delay_seconds` makes the token endpoint hang that long (a reset ends it).
- F&O: `/api/connector/enqueue|dequeue|ack|download|jobstatus` and the DMF actions
  GetMessageStatus, GetExecutionIdByMessageId, GetExecutionErrors, GetExecutionSummaryStatus;
  the package API (GetAzureWriteUrl with a SAS blob endpoint `/dmf/<name>` of its own: Put
  Blob, Put Block, Put Block List and Get Blob with Azure's size limits of the SAS version it
  issues, `knobs.sas_version`; see `_blobs`, `emu.blobs`), ImportFromPackage one at a time,
  the error-file actions: see `_packages`; `emu.packages` counts the import calls and the
  most in flight at once; ExportToPackage of the data projects `knobs.export_projects`
  (CustomersV3, General journal) into packages, GetExportedPackageUrl (empty until the package
  is written) and the package's SAS download: see `_package_exports`; `emu.package_exports`
  counts the exports F&O started. Recorded operations: `blob_put`, `blob_block`,
  `blob_block_list`, `blob_get`.
  Every call needs a bearer token for `aud` == base URL (lower case, no trailing slash) of this
  tenant with an `oid`; otherwise 401 `{"Message": "Authorization has been denied for this
  request. Reason: ..."}`. Connector calls also need the client id on the job's allow-list.

`emu.received(activity_id)`: a job's enqueued files in the order F&O received them (what a
job that processes messages in order follows; `Message.external_id` names each file).

Message lifecycle on the emulator clock (`emu.clock.advance()`, `emu.clock.speed`):
Enqueued -> Preprocessing -> Processing -> outcome, with durations from the knobs. The outcome
comes from the file: CustomersV3 and General journal files (DMF XML-Element or XML-Attribute,
or CSV with a header row) are validated against the company's reference data; errors make
ProcessedWithErrors, an unreadable file PreProcessingError. Other entities and data packages
end Processed. `emu.set_outcome()` overrides all of this. The execution id
(`<project>-<yyyy-MM-ddTHH:mm:ss>-<32 HEX>`) exists from Preprocessing on.

Choices where the spec is UNCONFIRMED (documented here so tests can rely on them):

- Unknown activity id (enqueue, dequeue, ack, jobstatus): 500 `{"Message": "An error has
  occurred."}`, as RIS's connection check expects for dequeue; 404 with
  `knobs.unknown_ids_not_found`.
- Disabled job: enqueue answers 200 and the message stays Enqueued until
  `emu.set_job_enabled(id, True)`; dequeue answers 204.
- File job without `entity`, or an `entity` that is not the job's (names compare without case
  and spaces; CustomersV3/CustCustomerV3Entity and General journal/LedgerJournalEntity are
  aliases): 400 `{"Message": ...}`. A data-package job ignores `entity`.
- `company`: used when the job has "Use company from message" (default), else the job's
  company; a company without reference data ends PreProcessingError.
- Unknown message id: GetMessageStatus answers "Enqueued" (an empty record's first enum value),
  GetExecutionIdByMessageId the zero GUID; unknown execution id: GetExecutionErrors "[]",
  GetExecutionSummaryStatus "Unknown". `knobs.unknown_ids_not_found` turns all into 404.
- Over `knobs.max_enqueue_bytes`: the body is read to its end (so the client sees the answer),
  then 413 with IIS's text.
- A connection dropped "after the body" is dropped after the request was served: an enqueue is
  stored, an ack counts; the client just never hears back.
- Ack: 200 with an empty body; a pop receipt from an earlier dequeue is refused with 400.
  Download location: `{base}/api/connector/download/{correlation id}`.
- Exports: `emu.add_export(id, bytes)` queues any file; `emu.add_customers_export(id,
  file_format="xml"|"csv"|"package")` what a CustomersV3 export job produces (the package:
  Manifest.xml, PackageHeader.xml, Customers V3.xml). Faults: `knobs.download_break_burst`
  (a download cut after `download_break_after_bytes`), `knobs.download_location_http`,
  `knobs.download_location_origin` (a location on another scheme, host or port), and
  for a failing ack `knobs.error_burst` with `knobs.operations = frozenset({"ack"})`
  (`drop_after_body_burst` for an ack applied whose answer is lost). An unacked message is
  offered again `knobs.redelivery_seconds` (1800) after its dequeue, on the emulator clock.
- User-based service protection limits (`knobs.user_max_concurrent`, `user_max_requests` per
  `user_window_seconds`; see `_limits`): 429 with F&O's texts and a Retry-After that grows
  while the user keeps calling; `emu.limits.max_in_flight` is the most requests of one user
  seen at once, `emu.limits.refusals` the 429s they caused.
- Certificate credentials: an `App` with `certificate_pem` accepts MSAL's RS256/PS256 client
  assertions signed by that certificate's key.
"""

from ._clock import Clock
from ._emulator import Emulator
from ._models import (
    OPERATIONS,
    THROTTLE_MESSAGES,
    App,
    ExecutionErrorRecord,
    Job,
    Knobs,
    Message,
    MessageIdFormat,
    MessageState,
    RecordedRequest,
)

__all__ = [
    "OPERATIONS",
    "THROTTLE_MESSAGES",
    "App",
    "Clock",
    "Emulator",
    "ExecutionErrorRecord",
    "Job",
    "Knobs",
    "Message",
    "MessageIdFormat",
    "MessageState",
    "RecordedRequest",
]
