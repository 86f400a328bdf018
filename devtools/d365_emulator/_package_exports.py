"""The DMF package export: ExportToPackage, its execution, GetExportedPackageUrl and the
package's SAS download (a blob of :mod:`._blobs`).

Choices where the spec is UNCONFIRMED (tests rely on them):

- Data projects: ``knobs.export_projects`` maps a project name (case-insensitive) to its one
  entity: ``CustomersV3`` (a DMF XML file) or ``General journal`` (CSV). Another name answers
  400 "Data project '<x>' was not found."; an unknown company 400 "Company '<x>' does not
  exist."
- An execution id already used, without ``reExecute``: 400 "Execution ID '<id>' already
  exists."; with it, the project runs again under that id.
- The answer is the execution id, flat (``"value": "<id>"``, as RIS reads it) or nested
  (``"value": {"value": "<id>"}``, as the docs show) with ``knobs.export_nested_values``; the
  same for GetExportedPackageUrl.
- The execution: Executing for ``knobs.package_export_seconds`` (emulator clock), then
  Succeeded, or Failed with ``knobs.package_export_fail`` (its execution errors say why).
  GetExportedPackageUrl answers "" until ``knobs.package_url_delay_seconds`` after success,
  then a SAS URL of the package: ``Manifest.xml``, ``PackageHeader.xml`` and the entity's
  file, ``knobs.export_rows`` rows; ``knobs.export_package_path`` serves that file instead
  (a large package for a benchmark).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import threading
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ._blobs import BlobStore
from ._clock import Clock
from ._exports import customers_export
from ._models import ExecutionErrorRecord, Knobs
from ._reference_data import company_data
from ._replies import Reply, odata_error, odata_value

PACKAGE_EXPORT_ACTIONS = frozenset({"ExportToPackage", "GetExportedPackageUrl"})
FAILURE_TEXT = "Export of entity '{entity}' failed: the data project has no active mapping."
_JOURNAL_COLUMNS = (
    "JOURNALBATCHNUMBER",
    "LINENUMBER",
    "JOURNALNAME",
    "VOUCHER",
    "TRANSDATE",
    "ACCOUNTTYPE",
    "ACCOUNTDISPLAYVALUE",
    "DEBITAMOUNT",
    "CREDITAMOUNT",
    "CURRENCYCODE",
    "TEXT",
)
_SUMMARY_TYPE = "Microsoft.Dynamics.DataEntities.DMFExecutionSummaryStatus"


@dataclass
class ExportExecution:
    """One ExportToPackage execution."""

    execution_id: str
    project: str
    entity: str
    company: str
    package_name: str
    started_at: datetime
    finished_at: datetime
    failed: bool
    url_ready_at: datetime
    package_url: str | None = None


class PackageExports:
    """ExportToPackage and GetExportedPackageUrl; thread-safe."""

    def __init__(
        self, clock: Clock, knobs: Knobs, base_url: Callable[[], str], blobs: BlobStore
    ) -> None:
        self._clock = clock
        self._knobs = knobs
        self._base_url = base_url
        self._blobs = blobs
        self._lock = threading.Lock()
        self.executions: dict[str, ExportExecution] = {}
        self.export_calls = 0
        """ExportToPackage calls that started an export (refusals not counted)."""

    def clear(self) -> None:
        """Forget executions and counts."""
        with self._lock:
            self.executions.clear()
            self.export_calls = 0

    def action(self, operation: str, payload: Mapping[str, Any]) -> Reply:
        """Answer one of PACKAGE_EXPORT_ACTIONS."""
        if operation == "ExportToPackage":
            return self._export(payload)
        execution_id = payload.get("executionId")
        if not isinstance(execution_id, str):
            return odata_error(400, "The parameter 'executionId' is missing or not a string.")
        with self._lock:
            execution = self.executions.get(execution_id.strip())
        if execution is None:
            return odata_error(400, f"Execution '{execution_id}' details were not found.")
        return self._value(self._package_url(execution))

    def _value(self, value: str) -> Reply:
        nested = {"value": value} if self._knobs.export_nested_values else value
        return odata_value(self._base_url(), nested)

    def _export(self, payload: Mapping[str, Any]) -> Reply:
        project = payload.get("definitionGroupId")
        projects = {name.lower(): entity for name, entity in self._knobs.export_projects.items()}
        if not isinstance(project, str) or project.strip().lower() not in projects:
            return odata_error(400, f"Data project '{project}' was not found.")
        company = str(payload.get("legalEntityId") or "USMF").upper()
        if company_data(company) is None:
            return odata_error(400, f"Company '{company}' does not exist.")
        now = self._clock.now()
        sent = str(payload.get("executionId") or "").strip()
        execution_id = sent or f"{project}-{now:%Y-%m-%dT%H:%M:%S}-{uuid.uuid4().hex.upper()}"
        done = now + timedelta(seconds=self._knobs.package_export_seconds)
        execution = ExportExecution(
            execution_id=execution_id,
            project=project.strip(),
            entity=projects[project.strip().lower()],
            company=company,
            package_name=str(payload.get("packageName") or execution_id),
            started_at=now,
            finished_at=done,
            failed=self._knobs.package_export_fail,
            url_ready_at=done + timedelta(seconds=self._knobs.package_url_delay_seconds),
        )
        with self._lock:
            if execution_id in self.executions and payload.get("reExecute") is not True:
                return odata_error(400, f"Execution ID '{execution_id}' already exists.")
            self.executions[execution_id] = execution
            self.export_calls += 1
        return self._value(execution_id)

    def _package_url(self, execution: ExportExecution) -> str:
        if execution.failed or self._clock.now() < execution.url_ready_at:
            return ""
        with self._lock:
            if execution.package_url is None:
                execution.package_url = self._store_package(execution)
            return execution.package_url

    def _store_package(self, execution: ExportExecution) -> str:
        name = f"{execution.execution_id}/{execution.package_name}.zip"
        given = self._knobs.export_package_path
        if given is None:
            return self._blobs.store_file(name, export_package(execution, self._knobs.export_rows))
        # A link of its own (the store deletes its files on reset), or a copy across devices.
        linked = self._blobs.spool_dir() / f"export-{uuid.uuid4().hex}.zip"
        try:
            os.link(given, linked)
        except OSError:
            shutil.copyfile(given, linked)
        return self._blobs.store_path(name, linked)

    # -- execution status (used by GetExecutionSummaryStatus / GetExecutionErrors) ----------

    def summary(self, execution_id: str) -> Reply | None:
        """The summary status of an export execution; None when it is not one."""
        with self._lock:
            execution = self.executions.get(execution_id.strip())
        if execution is None:
            return None
        if self._clock.now() < execution.finished_at:
            status = "Executing"
        else:
            status = "Failed" if execution.failed else "Succeeded"
        return odata_value(self._base_url(), status, _SUMMARY_TYPE)

    def errors(self, execution_id: str) -> tuple[ExecutionErrorRecord, ...] | None:
        """The errors of a failed export execution; None when it is not one."""
        with self._lock:
            execution = self.executions.get(execution_id.strip())
        if execution is None:
            return None
        if not execution.failed or self._clock.now() < execution.finished_at:
            return ()
        return (ExecutionErrorRecord("", "", FAILURE_TEXT.format(entity=execution.entity)),)


def export_package(execution: ExportExecution, rows: int) -> bytes:
    """The package of an export: ``Manifest.xml``, ``PackageHeader.xml`` and the entity's
    file, as F&O writes a data project's export."""
    journal = execution.entity.lower().replace(" ", "") == "generaljournal"
    file_name = f"{execution.entity}.{'csv' if journal else 'xml'}"
    data = (
        journal_export(execution.company, rows)
        if journal
        else customers_export(execution.company, rows)
    )
    source = "CSV-Unicode" if journal else "XML-Element"
    ns = 'xmlns="http://schemas.microsoft.com/dynamics/2015/01/DataManagement"'
    manifest = (
        f'<?xml version="1.0" encoding="utf-8"?>\r\n<DataManagementPackageManifest {ns}>'
        f"<DefinitionGroupName>{execution.project}</DefinitionGroupName>"
        "<PackageEntityList><DataManagementPackageEntityData>"
        f"<DefaultRefreshType>FullPush</DefaultRefreshType><EntityName>{execution.entity}"
        f"</EntityName><InputFilePath>{file_name}</InputFilePath>"
        f"<SourceFormat>{source}</SourceFormat></DataManagementPackageEntityData>"
        "</PackageEntityList></DataManagementPackageManifest>\r\n"
    )
    header = (
        f'<?xml version="1.0" encoding="utf-8"?>\r\n<DataManagementPackageHeader {ns}>'
        f"<Description>{execution.project}</Description><ManifestType>Microsoft.Dynamics.AX."
        "Framework.Tools.DataManagement.Serialization.DataManagementPackageManifest"
        "</ManifestType><PackageType>Export</PackageType><PackageVersion>2</PackageVersion>"
        f"<LegalEntity>{execution.company}</LegalEntity></DataManagementPackageHeader>\r\n"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, member in (
            ("Manifest.xml", manifest.encode()),
            ("PackageHeader.xml", header.encode()),
            (file_name, data),
        ):
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, member)
    return buffer.getvalue()


def journal_export(company: str, rows: int) -> bytes:
    """A General journal export as DMF writes CSV: a header row, balanced voucher pairs."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(_JOURNAL_COLUMNS)
    for index in range(rows):
        debit = index % 2 == 0
        writer.writerow(
            (
                f"{company}-000{1 + index // 2}",
                index + 1,
                "GenJrn",
                f"GNJL{1000 + index // 2}",
                "2026-01-15T12:00:00",
                "Ledger",
                "110110-001" if debit else "401100-002",
                "250.00" if debit else "",
                "" if debit else "250.00",
                "USD",
                f"Exported line {index + 1}",
            )
        )
    return text.getvalue().encode("utf-8-sig")
