"""The DMF package API: GetAzureWriteUrl (a SAS URL of the blob endpoint in :mod:`._blobs`)
and the ImportFromPackage / error-file actions, with F&O's one-import-at-a-time rule.

Choices where the spec is UNCONFIRMED (tests rely on them):

- A second ImportFromPackage while one runs: 400 with :data:`PARALLEL_REFUSAL` (the docs say
  only "it fails"). ``knobs.import_refuse_burst`` refuses the next N calls the same way.
- An execution id already used: 400 "Execution ID '<id>' already exists."
- The package: a zip with ``Manifest.xml`` (entities from ``//EntityName`` and
  ``//InputFilePath``) and ``PackageHeader.xml``; either missing, or a manifest that does not
  parse or names no entity, answers 400 with the texts below. An entity neither modelled nor
  any job's answers LC's "Entity <x> does not exist in the target environment".
- The synchronous call checks the package's directory and manifest, takes
  ``knobs.import_call_seconds`` (real time) and answers; it goes on when the client gave up.
  The files are then unpacked and validated (NotRun meanwhile; CustomersV3 and General
  journal as for enqueued files); the execution runs ``knobs.package_run_seconds`` more on
  the emulator clock (Executing), then ends Succeeded / PartiallySucceeded / Failed.
  For ``knobs.execution_not_found_seconds`` after the call, GetExecutionSummaryStatus answers
  400 "... were not found".
- Error files: an entity whose file could not be read has a staging error file; one with row
  errors has a target error keys file (record ids), which GetImportTargetErrorKeysFileUrl
  hands out ``knobs.error_keys_seconds`` (emulator clock) after GenerateImportTargetErrorKeysFile.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ._blobs import Blob, BlobStore
from ._clock import Clock
from ._entities import evaluate, is_modelled, same_entity
from ._models import ExecutionErrorRecord, Job, Knobs, Outcome
from ._reference_data import company_data
from ._replies import Reply, json_reply, odata_error, odata_value

PARALLEL_REFUSAL = (
    "ImportFromPackage cannot run in parallel: another import of a package is in progress "
    "in this environment. Try again when it has finished."
)
PACKAGE_ACTIONS = frozenset(
    {
        "GetAzureWriteUrl",
        "ImportFromPackage",
        "GetImportStagingErrorFileUrl",
        "GenerateImportTargetErrorKeysFile",
        "GetImportTargetErrorKeysFileUrl",
    }
)
_SUMMARY_OF = {"Processed": "Succeeded", "ProcessedWithErrors": "PartiallySucceeded"}


@dataclass
class PackageEntity:
    """One entity of an imported package and what its import made of it."""

    name: str
    outcome: Outcome
    staging_file: str | None = None
    keys_file: str | None = None
    keys_ready_at: datetime | None = None


@dataclass
class PackageExecution:
    """One ImportFromPackage execution."""

    execution_id: str
    definition_group: str
    company: str
    started_at: datetime
    called_at: float
    entities: list[PackageEntity] = field(default_factory=list)
    finished_at: datetime | None = None
    """When the execution ends on the emulator clock; None while the call still runs."""

    @property
    def summary(self) -> str:
        """The execution's overall result, from its entities."""
        summaries = {entity.outcome.summary for entity in self.entities}
        if not summaries or summaries == {"Succeeded"}:
            return "Succeeded"
        return "Failed" if summaries == {"Failed"} else "PartiallySucceeded"

    @property
    def errors(self) -> tuple[ExecutionErrorRecord, ...]:
        """Row errors of every entity, in package order."""
        return tuple(error for entity in self.entities for error in entity.outcome.errors)


class PackageError(Exception):
    """F&O refuses the package (400 with this text)."""


class PackageApi:
    """The package actions and the blob endpoint; thread-safe."""

    def __init__(
        self,
        jobs: Mapping[str, Job],
        clock: Clock,
        knobs: Knobs,
        base_url: Callable[[], str],
        blobs: BlobStore,
    ) -> None:
        self._jobs = jobs
        self._clock = clock
        self._knobs = knobs
        self._base_url = base_url
        self._blobs = blobs
        self._lock = threading.Lock()
        self.executions: dict[str, PackageExecution] = {}
        self.import_calls = 0
        """ImportFromPackage calls that started an import (refusals not counted)."""
        self.in_flight = 0
        self.max_in_flight = 0
        """The most ImportFromPackage calls that ran at once (refused ones included)."""

    def clear(self) -> None:
        """Forget executions and counts."""
        with self._lock:
            self.executions.clear()
            self.import_calls = self.in_flight = self.max_in_flight = 0

    # -- actions ----------------------------------------------------------------------------

    def action(self, operation: str, payload: Mapping[str, Any]) -> Reply:
        """Answer one of PACKAGE_ACTIONS."""
        starters = {"GetAzureWriteUrl": self._azure_write_url, "ImportFromPackage": self._import}
        if operation in starters:
            return starters[operation](payload)
        execution_id = payload.get("executionId")
        entity_name = payload.get("entityName")
        if not isinstance(execution_id, str) or not isinstance(entity_name, str):
            return odata_error(400, "The parameters 'executionId' and 'entityName' are required.")
        entity = self._entity(execution_id, entity_name)
        if isinstance(entity, Reply):
            return entity
        if operation == "GetImportStagingErrorFileUrl":
            return odata_value(self._base_url(), entity.staging_file or "")
        if operation == "GenerateImportTargetErrorKeysFile":
            return self._generate_keys(entity)
        ready = entity.keys_ready_at is not None and self._clock.now() >= entity.keys_ready_at
        return odata_value(self._base_url(), entity.keys_file if ready and entity.keys_file else "")

    def _azure_write_url(self, payload: Mapping[str, Any]) -> Reply:
        name = payload.get("uniqueFileName")
        if not isinstance(name, str) or not name.strip():
            return odata_error(400, "The parameter 'uniqueFileName' is missing or not a string.")
        blob_id = "{" + str(uuid.uuid4()).upper() + "}"
        value = json_reply(200, {"BlobId": blob_id, "BlobUrl": self._blobs.write_url(name.strip())})
        return odata_value(self._base_url(), value.body.decode())

    def _import(self, payload: Mapping[str, Any]) -> Reply:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            refuse = self.in_flight > 1 or self._knobs.import_refuse_burst > 0
            if self._knobs.import_refuse_burst > 0 and self.in_flight == 1:
                self._knobs.import_refuse_burst -= 1
        try:
            if refuse:
                return odata_error(400, PARALLEL_REFUSAL)
            try:
                execution = self._start(payload)
            except PackageError as exc:
                return odata_error(400, str(exc))
            return odata_value(self._base_url(), execution.execution_id)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _start(self, payload: Mapping[str, Any]) -> PackageExecution:
        project = payload.get("definitionGroupId")
        package_url = payload.get("packageUrl")
        if not isinstance(project, str) or not project.strip():
            raise PackageError("The parameter 'definitionGroupId' is required.")
        if not isinstance(package_url, str) or (blob := self._blobs.own_blob(package_url)) is None:
            raise PackageError("The package URL is not valid, or the package was not found.")
        company = str(payload.get("legalEntityId") or "USMF").upper()
        if company_data(company) is None:
            raise PackageError(f"Company '{company}' does not exist.")
        sent = "" if self._knobs.import_own_execution_id else str(payload.get("executionId") or "")
        execution_id = sent.strip() or (
            f"{project}-{self._clock.now():%Y-%m-%dT%H:%M:%S}-{uuid.uuid4().hex.upper()}"
        )
        if execution_id in self.executions:
            raise PackageError(f"Execution ID '{execution_id}' already exists.")
        members = _check_package(blob, self._known_entity)
        execution = PackageExecution(
            execution_id, project, company, self._clock.now(), time.monotonic()
        )
        with self._lock:
            self.executions[execution_id] = execution
            self.import_calls += 1
        # The synchronous call takes its time before it answers; the client may give up
        # meanwhile, and the import goes on. The files are unpacked and validated after the
        # answer (NotRun until then), so a large package's call costs no more than a read of
        # its directory.
        if self._knobs.import_call_seconds:
            time.sleep(self._knobs.import_call_seconds)
        threading.Thread(
            target=self._run, args=(execution, blob, members), name="dmf-import", daemon=True
        ).start()
        return execution

    def _run(self, execution: PackageExecution, blob: Blob, members: list[tuple[str, str]]) -> None:
        entities = [
            self._run_entity(execution, name, data) for name, data in _extract(blob, members)
        ]
        with self._lock:
            execution.entities = entities
            execution.finished_at = self._clock.now() + timedelta(
                seconds=self._knobs.package_run_seconds
            )

    def _known_entity(self, name: str) -> bool:
        return is_modelled(name) or any(
            job.entity and same_entity(job.entity, name) for job in self._jobs.values()
        )

    def _run_entity(self, execution: PackageExecution, name: str, data: Path) -> PackageEntity:
        try:
            outcome = evaluate(name, execution.company, data)
        finally:
            data.unlink(missing_ok=True)
        if outcome.status not in _SUMMARY_OF:
            outcome = Outcome(outcome.status, outcome.errors, "Failed")
        entity = PackageEntity(name, outcome)
        stem = f"{execution.execution_id}-{''.join(name.split())}"
        if outcome.status == "PreProcessingError":
            text = "\n".join(error.message for error in outcome.errors) + "\n"
            entity.staging_file = self._blobs.store_file(
                f"{stem}-staging-errors.txt", text.encode()
            )
        elif outcome.errors:
            keys = sorted({error.record_id for error in outcome.errors})
            text = "RECID\n" + "\n".join(keys) + "\n"
            entity.keys_file = self._blobs.store_file(f"{stem}-error-keys.csv", text.encode())
        return entity

    def _entity(self, execution_id: str, entity_name: str) -> PackageEntity | Reply:
        execution = self.executions.get(execution_id.strip())
        if execution is None or execution.finished_at is None:
            return odata_error(400, f"Execution '{execution_id}' details were not found.")
        for entity in execution.entities:
            if same_entity(entity.name, entity_name):
                return entity
        return odata_error(
            400, f"Entity '{entity_name}' is not part of execution '{execution_id}'."
        )

    def _generate_keys(self, entity: PackageEntity) -> Reply:
        if entity.keys_file and entity.keys_ready_at is None:
            entity.keys_ready_at = self._clock.now() + timedelta(
                seconds=self._knobs.error_keys_seconds
            )
        return odata_value(self._base_url(), entity.keys_file is not None, "Edm.Boolean")

    # -- execution status (used by GetExecutionSummaryStatus / GetExecutionErrors) ----------

    def summary(self, execution_id: str) -> str | Reply | None:
        """The summary status of a package execution, a 400 "were not found" early on, or
        None when `execution_id` is not a package execution."""
        execution = self.executions.get(execution_id.strip())
        if execution is None:
            return None
        fresh = time.monotonic() - execution.called_at < self._knobs.execution_not_found_seconds
        if fresh:
            return odata_error(
                400, f"The execution details for execution ID '{execution_id}' were not found."
            )
        if execution.finished_at is None:
            return "NotRun"
        if self._clock.now() < execution.finished_at:
            return "Executing"
        return execution.summary

    def errors(self, execution_id: str) -> tuple[ExecutionErrorRecord, ...] | None:
        """Row errors of a finished package execution; None when it is not one."""
        execution = self.executions.get(execution_id.strip())
        if execution is None:
            return None
        if execution.finished_at is None or self._clock.now() < execution.finished_at:
            return ()
        return execution.errors


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _check_package(blob: Blob, known: Callable[[str], bool]) -> list[tuple[str, str]]:
    """(entity name, zip member) per manifest entity, in manifest order.

    :raises PackageError: with F&O-like texts for what makes the package unusable.
    """
    with blob.open() as package:
        return _check_zip(package, known)


def _check_zip(package: Any, known: Callable[[str], bool]) -> list[tuple[str, str]]:
    try:
        archive = zipfile.ZipFile(package)
    except (zipfile.BadZipFile, OSError):
        raise PackageError("The package is not a valid zip file.") from None
    with archive:
        names = {info.filename.lower(): info.filename for info in archive.infolist()}
        for required in ("Manifest.xml", "PackageHeader.xml"):
            if required.lower() not in names:
                raise PackageError(f"The package does not contain {required}.")
        try:
            root = ET.fromstring(archive.read(names["manifest.xml"]))  # noqa: S314 - test data
        except ET.ParseError as exc:
            raise PackageError(f"Manifest.xml is not valid XML: {exc}.") from None
        pairs = _manifest_entities(root)
        if not pairs:
            raise PackageError("Manifest.xml does not name any entity (EntityName).")
        members = []
        for entity, input_file in pairs:
            if not known(entity):
                raise PackageError(f"Entity {entity} does not exist in the target environment.")
            member = names.get(input_file.lower())
            if member is None:
                raise PackageError(
                    f"The file '{input_file}' of entity '{entity}' was not found in the package."
                )
            members.append((entity, member))
        return members


def _extract(blob: Blob, members: list[tuple[str, str]]) -> Iterator[tuple[str, Path]]:
    """Each entity's file unpacked to a file of its own (deleted by the caller)."""
    folder = blob.parts[0].parent
    with blob.open() as package, zipfile.ZipFile(package) as archive:
        for entity, member in members:
            with (
                archive.open(member) as source,
                tempfile.NamedTemporaryFile(dir=folder, prefix="dmf-", delete=False) as out,
            ):
                while chunk := source.read(1024 * 1024):
                    out.write(chunk)
            yield entity, Path(out.name)


def _manifest_entities(root: ET.Element) -> list[tuple[str, str]]:
    pairs = []
    for element in root.iter():
        if _local(element.tag) != "DataManagementPackageEntityData":
            continue
        fields = {_local(child.tag): (child.text or "").strip() for child in element}
        if fields.get("EntityName"):
            pairs.append((fields["EntityName"], fields.get("InputFilePath") or ""))
    return pairs
