"""The F&O side: the recurring-integrations connector (/api/connector) and the DMF OData
actions, answered from the message store."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ._body import Body
from ._clock import Clock
from ._entities import same_entity
from ._entra import Entra, TokenClaims, TokenError
from ._models import STATUS_VARIANTS, Job, Knobs, MessageIdFormat, normalize_guid
from ._package_exports import PACKAGE_EXPORT_ACTIONS, PackageExports
from ._packages import PACKAGE_ACTIONS, PackageApi
from ._replies import (
    GENERIC_ERROR,
    ODATA_TYPE,
    Reply,
    connector_error,
    json_reply,
    odata_error,
    odata_value,
    text_reply,
)
from ._store import ZERO_GUID, AckResult, MessageStore

_LOGGER = logging.getLogger(__name__)

_DENIED = "Authorization has been denied for this request."
# The numeric DataJobState of the legacy jobstatus endpoint (RIS ContractEnums.cs).
_DATA_JOB_STATE = {
    "Enqueued": 0,
    "Dequeued": 1,
    "Downloaded": 2,
    "Acked": 3,
    "Preprocessing": 4,
    "Processing": 4,
    "Processed": 5,
    "ProcessedWithErrors": 6,
    "PostProcessingFailed": 7,
    "PreProcessingError": 8,
}
_SUMMARY_BY_PHASE = {"Enqueued": "NotRun", "Preprocessing": "NotRun", "Processing": "Executing"}
_NO_FILE = "The file was not uploaded to the blob storage for this message."


@dataclass(frozen=True)
class Call:
    """One routed request, its body already read."""

    operation: str
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    params: Mapping[str, str]
    body: Body


@dataclass
class Environment:
    """The state the F&O handlers work on (owned by the Emulator)."""

    jobs: dict[str, Job]
    store: MessageStore
    entra: Entra
    clock: Clock
    knobs: Knobs
    base_url: Callable[[], str]
    packages: PackageApi
    package_exports: PackageExports


def _guid_or_none(text: str) -> str | None:
    try:
        return normalize_guid(text)
    except ValueError:
        return None


class FnoApi:
    """Handlers for the F&O operations; each takes a Call and answers a Reply."""

    def __init__(self, env: Environment) -> None:
        self._env = env

    # -- auth -------------------------------------------------------------------------------

    def authenticate(self, call: Call) -> TokenClaims | Reply:
        """The caller's claims, or the 401 F&O would answer."""
        header = call.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthorized("the request has no bearer token", invalid_token=False)
        try:
            return self._env.entra.validate(token.strip(), self._env.base_url().lower())
        except TokenError as exc:
            return _unauthorized(str(exc), invalid_token=True)

    @staticmethod
    def _authorized_for(claims: TokenClaims, job: Job) -> Reply | None:
        allowed = {client.lower() for client in job.allowed_client_ids}
        if claims.client_id.lower() in allowed:
            return None
        return connector_error(
            401,
            f"{_DENIED} The application '{claims.client_id}' is not authorized for recurring "
            f"data job '{job.activity_id}'. Add the client ID on the job's 'Set up "
            "authorization policy' tab and enable it.",
        )

    def _job_for(self, call: Call) -> Job | Reply:
        """The job of the URL's activity id, or the answer for an unknown one."""
        activity = _guid_or_none(call.params.get("activity", ""))
        job = self._env.jobs.get(activity or "")
        if job is not None:
            return job
        if self._env.knobs.unknown_ids_not_found:
            return connector_error(
                404, f"Recurring data job '{call.params.get('activity')}' was not found."
            )
        return connector_error(500, GENERIC_ERROR)

    def _caller_job(self, call: Call) -> Job | Reply:
        claims = self.authenticate(call)
        if isinstance(claims, Reply):
            return claims
        job = self._job_for(call)
        if isinstance(job, Reply):
            return job
        return self._authorized_for(claims, job) or job

    # -- connector --------------------------------------------------------------------------

    def enqueue(self, call: Call) -> Reply:
        """POST /api/connector/enqueue/{activity}?entity=&company=."""
        stored = False
        try:
            job = self._caller_job(call)
            if isinstance(job, Reply):
                return job
            if call.body.over_limit:
                return text_reply(
                    413, "The page was not displayed because the request entity is too large."
                )
            refusal = _entity_refusal(job, call.query.get("entity"))
            if refusal is not None:
                return refusal
            reply = self._accept(job, call)
            stored = True
            return reply
        finally:
            if not stored and call.body.path is not None:
                call.body.path.unlink(missing_ok=True)

    def _accept(self, job: Job, call: Call) -> Reply:
        knobs = self._env.knobs
        company = job.company
        if job.use_company_from_message and call.query.get("company"):
            company = call.query["company"].upper()
        assert call.body.path is not None  # enqueue bodies are always spooled
        message_id = self._env.store.add_import(
            job,
            entity=call.query.get("entity") or job.entity,
            company=company,
            external_id=call.headers.get("x-ms-dyn-externalidentifier"),
            body_path=call.body.path,
            body_size=call.body.size,
            now=self._env.clock.now(),
            durations=(
                knobs.enqueued_seconds,
                knobs.preprocessing_seconds,
                knobs.processing_seconds,
            ),
        )
        _LOGGER.info(
            "enqueued message=%s activity=%s company=%s bytes=%s",
            message_id,
            job.activity_id,
            company,
            call.body.size,
        )
        return _message_id_reply(message_id, knobs.message_id_format)

    def dequeue(self, call: Call) -> Reply:
        """GET /api/connector/dequeue/{activity}: 204 when nothing is visible."""
        job = self._caller_job(call)
        if isinstance(job, Reply):
            return job
        if not job.enabled:
            return Reply(204)
        knobs = self._env.knobs
        found = self._env.store.dequeue(
            job.activity_id, self._env.clock.now(), knobs.redelivery_seconds
        )
        if found is None:
            return Reply(204)
        message, pop_receipt, previous = found
        origin = knobs.download_location_origin or self._env.base_url()
        location = f"{origin}/api/connector/download/{message.message_id}"
        if knobs.download_location_http:
            location = "http://" + location.split("://", 1)[1]
        return json_reply(
            200,
            {
                "CorrelationId": message.message_id,
                "PopReceipt": pop_receipt,
                "DownloadLocation": None if knobs.dequeue_without_file else location,
                "IsDownLoadFileExist": not knobs.dequeue_without_file,
                "FileDownLoadErrorMessage": _NO_FILE if knobs.dequeue_without_file else None,
                "LastDequeueDateTime": _wire_time(previous),
            },
        )

    def download(self, call: Call) -> Reply:
        """GET /api/connector/download/{correlation id}: the exported file, streamed."""
        claims = self.authenticate(call)
        if isinstance(claims, Reply):
            return claims
        correlation = _guid_or_none(call.params.get("correlation", "")) or ""
        path = self._env.store.export_file(correlation)
        if path is None:
            return connector_error(404, f"No file was found for '{call.params['correlation']}'.")
        knobs = self._env.knobs
        cut_after = None
        if knobs.download_break_burst > 0:
            knobs.download_break_burst -= 1
            cut_after = knobs.download_break_after_bytes
        return Reply(200, content_type="application/octet-stream", file=path, cut_after=cut_after)

    def ack(self, call: Call) -> Reply:
        """POST /api/connector/ack/{activity} with the dequeue body (or its 3-field subset)."""
        job = self._caller_job(call)
        if isinstance(job, Reply):
            return job
        payload = _json_object(call.body)
        if payload is None or not payload.get("CorrelationId") or not payload.get("PopReceipt"):
            return connector_error(
                400,
                "The request body must be the dequeue response "
                "(CorrelationId, PopReceipt, DownloadLocation).",
            )
        correlation = _guid_or_none(str(payload["CorrelationId"])) or ""
        result = self._env.store.ack(job.activity_id, correlation, str(payload["PopReceipt"]))
        if result is AckResult.UNKNOWN:
            return connector_error(
                400,
                f"Message '{payload['CorrelationId']}' was not found for this recurring data job.",
            )
        if result is AckResult.STALE:
            return connector_error(
                400, f"The PopReceipt does not match the latest dequeue of message '{correlation}'."
            )
        return Reply(200)

    def jobstatus(self, call: Call) -> Reply:
        """GET /api/connector/jobstatus/{activity}?jobId= (legacy, used by RIS)."""
        job = self._caller_job(call)
        if isinstance(job, Reply):
            return job
        message_id = _guid_or_none(call.query.get("jobId", "")) or ""
        message = self._env.store.get(message_id, self._env.clock.now())
        if message is None:
            return connector_error(404, f"Message '{call.query.get('jobId', '')}' was not found.")
        return json_reply(
            200,
            {
                "DataJobStatus": {
                    "DataProject": job.data_project,
                    "DataJobIdentifier": message.message_id,
                    "ExternalIdentifier": message.external_id,
                    "ExecutionIdentifier": message.execution_id or "",
                    "DataJobStartedDateTime": _wire_time(message.enqueued_at),
                    "DataJobCompletedDateTime": None,
                    "DataJobState": _DATA_JOB_STATE.get(message.state, 4),
                },
                "ExecutionLog": "",
                "ExecutionDetail": None,
            },
        )

    # -- DMF OData actions ------------------------------------------------------------------

    def odata_action(self, call: Call) -> Reply:
        """POST /data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.<action>."""
        claims = self.authenticate(call)
        if isinstance(claims, Reply):
            return claims
        payload = _json_object(call.body)
        if payload is None:
            return odata_error(400, "The request body is not a JSON object.")
        forced = self._forced_answer(call.operation)
        if forced is not None:
            return forced
        package_api = {
            **dict.fromkeys(PACKAGE_ACTIONS, self._env.packages.action),
            **dict.fromkeys(PACKAGE_EXPORT_ACTIONS, self._env.package_exports.action),
        }.get(call.operation)
        if package_api is not None:
            return package_api(call.operation, payload)
        action, parameter = _ACTIONS[call.operation]
        value = payload.get(parameter)
        if not isinstance(value, str):
            return odata_error(400, f"The parameter '{parameter}' is missing or not a string.")
        return action(self, value)

    def _forced_answer(self, operation: str) -> Reply | None:
        """The answer a knob forces for ``operation``: raw text first, then a JSON value."""
        knobs = self._env.knobs
        if operation in knobs.odata_bodies:
            return Reply(200, knobs.odata_bodies[operation].encode(), ODATA_TYPE)
        if operation in knobs.odata_values:
            return odata_value(self._env.base_url(), knobs.odata_values[operation])
        return None

    def _message_status(self, message_id: str) -> Reply:
        status = self._env.store.status(_guid_or_none(message_id) or "", self._env.clock.now())
        if status is None:
            if self._env.knobs.unknown_ids_not_found:
                return odata_error(404, f"Message '{message_id}' was not found.")
            # An unknown id reads an empty record, whose status is the enum's first value.
            status = "Enqueued"
        if self._env.knobs.status_variants:
            status = STATUS_VARIANTS.get(status, status)
        return odata_value(self._env.base_url(), status)

    def _execution_id(self, message_id: str) -> Reply:
        found = self._env.store.execution_id(_guid_or_none(message_id) or "", self._env.clock.now())
        if found is None and self._env.knobs.unknown_ids_not_found:
            return odata_error(404, f"Message '{message_id}' was not found.")
        return odata_value(self._env.base_url(), found or ZERO_GUID)

    def _execution_errors(self, execution_id: str) -> Reply:
        package_errors = self._env.packages.errors(execution_id)
        if package_errors is None:
            package_errors = self._env.package_exports.errors(execution_id)
        found = self._env.store.find_execution(execution_id, self._env.clock.now())
        if found is None and package_errors is None and self._env.knobs.unknown_ids_not_found:
            return odata_error(404, f"Execution '{execution_id}' was not found.")
        outcome = found[1] if found is not None else None
        records = package_errors if package_errors is not None else ()
        errors = [error.to_wire() for error in (outcome.errors if outcome else records)]
        if self._env.knobs.execution_errors_raw:
            text = _raw_error_array(errors)
        else:
            text = json.dumps(errors, separators=(",", ":"))
        return odata_value(self._env.base_url(), text)

    def _execution_summary(self, execution_id: str) -> Reply:
        exported = self._env.package_exports.summary(execution_id)
        if exported is not None:
            return exported
        package = self._env.packages.summary(execution_id)
        if isinstance(package, Reply):
            return package
        if package is not None:
            return odata_value(
                self._env.base_url(),
                package,
                "Microsoft.Dynamics.DataEntities.DMFExecutionSummaryStatus",
            )
        found = self._env.store.find_execution(execution_id, self._env.clock.now())
        if found is None:
            if self._env.knobs.unknown_ids_not_found:
                return odata_error(404, f"Execution '{execution_id}' was not found.")
            return odata_value(
                self._env.base_url(),
                "Unknown",
                "Microsoft.Dynamics.DataEntities.DMFExecutionSummaryStatus",
            )
        status, outcome = found
        summary = outcome.summary if outcome else _SUMMARY_BY_PHASE.get(status, "Executing")
        return odata_value(
            self._env.base_url(),
            summary,
            "Microsoft.Dynamics.DataEntities.DMFExecutionSummaryStatus",
        )


_ACTIONS: dict[str, tuple[Callable[[FnoApi, str], Reply], str]] = {
    "GetMessageStatus": (FnoApi._message_status, "messageId"),
    "GetExecutionIdByMessageId": (FnoApi._execution_id, "_messageId"),
    "GetExecutionErrors": (FnoApi._execution_errors, "executionId"),
    "GetExecutionSummaryStatus": (FnoApi._execution_summary, "executionId"),
}
ODATA_ACTIONS = frozenset(_ACTIONS) | PACKAGE_ACTIONS | PACKAGE_EXPORT_ACTIONS


def _unauthorized(reason: str, *, invalid_token: bool) -> Reply:
    challenge = 'Bearer error="invalid_token"' if invalid_token else "Bearer"
    reply = connector_error(401, f"{_DENIED} Reason: {reason}.")
    return Reply(401, reply.body, reply.content_type, {"WWW-Authenticate": challenge})


def _entity_refusal(job: Job, entity: str | None) -> Reply | None:
    if job.is_data_package:
        return None
    if not entity:
        return connector_error(
            400,
            "The 'entity' query parameter is required for recurring "
            f"data job '{job.activity_id}', which imports files of "
            f"entity '{job.entity}'.",
        )
    if not same_entity(job.entity, entity):
        return connector_error(
            400,
            f"Entity '{entity}' is not part of data project "
            f"'{job.data_project}' of recurring data job "
            f"'{job.activity_id}' (expected '{job.entity}').",
        )
    return None


def _message_id_reply(message_id: str, form: MessageIdFormat) -> Reply:
    if form is MessageIdFormat.BARE:
        return text_reply(200, message_id)
    if form is MessageIdFormat.OBJECT:
        return json_reply(200, {"value": message_id})
    text = {
        MessageIdFormat.QUOTED: message_id,
        MessageIdFormat.BRACED: "{" + message_id.upper() + "}",
        MessageIdFormat.UPPER: message_id.upper(),
    }[form]
    return json_reply(200, text)


def _json_object(body: Body) -> dict[str, Any] | None:
    if body.data is None:
        return None
    try:
        payload = json.loads(body.data or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def _raw_error_array(errors: list[dict[str, str]]) -> str:
    """The array with messages not escaped: the malformed form tolerant parsers must survive."""
    items = [
        '{"RecordId":"%s","Field":"%s","ErrorMessage":"%s"}'  # noqa: UP031 - verbatim on purpose
        % (error["RecordId"], error["Field"], error["ErrorMessage"])
        for error in errors
    ]
    return "[" + ",".join(items) + "]"


def _wire_time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")
