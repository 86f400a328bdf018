"""The client's calls that export a data project as a package: ExportToPackage, its URL.

Microsoft's "Data management package REST API" (D-PKG in the reference, section 13.4; also the
Learn module "Implement the Data management package API", unit "Import and export APIs"):
``ExportToPackage`` takes ``definitionGroupId`` (the data project), ``packageName`` (the name
of the file to download), ``executionId`` (empty: F&O makes one), ``reExecute`` and
``legalEntityId``; ``GetExportedPackageUrl`` takes ``executionId`` and answers the package's
SAS URL, empty until the package is ready. The docs show both answers nested
(``"value": {"value": ...}``) while Microsoft's clients read them flat: both are read.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from ._engine import Calls
from ._executions import start_execution
from ._parsing import parse_export_execution_id, parse_package_url
from ._retry import RetryPolicy
from ._text import require_text

__all__ = ["PackageExportCalls"]


class PackageExportCalls(Calls):
    """The data management package API's export: a data project run into a package."""

    def export_to_package(
        self,
        definition_group_id: str,
        package_name: str,
        execution_id: str,
        *,
        re_execute: bool = False,
        legal_entity_id: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> str:
        """ExportToPackage: run the export data project ``definition_group_id`` into a
        package; returns the execution id F&O answered (``execution_id`` when it answers
        none). F&O may answer another id than the one sent: the caller follows F&O's.

        Never re-sent blindly: within the call only answers that prove F&O did not take it
        (429, 503) and no connection before the body left are retried. A client timeout or
        another 5xx may hide an export that runs: the caller then follows ``execution_id``
        with `get_execution_summary_status` instead of calling again.

        :param definition_group_id: the export data project's name.
        :param package_name: the name F&O gives the package file.
        :param execution_id: the execution id to create (F&O takes free text).
        :keyword re_execute: F&O's ``reExecute``: run the project again for an execution id
            it already has.
        :keyword legal_entity_id: the company (DataAreaId) to export from.
        :keyword retry: this call's retry policy instead of the client's.
        :raises ValueError: for an empty project, package name or execution id.
        :raises D365HttpError: (a subclass of it) when F&O refuses the export.
        :raises D365ConnectionError: when no answer came; see its `sent_body`.
        :raises D365Error: (a subclass of it) for any other failure.
        """
        project = require_text(definition_group_id, "definition_group_id")
        execution = require_text(execution_id, "execution_id")
        parameters: dict[str, Any] = {
            "definitionGroupId": project,
            "packageName": require_text(package_name, "package_name"),
            "executionId": execution,
            "reExecute": re_execute,
            "legalEntityId": legal_entity_id or "",
        }
        return start_execution(
            self._engine,
            "ExportToPackage",
            parameters,
            convert=parse_export_execution_id,
            retry=retry,
            event="export",
            project=project,
            execution=execution,
            legal_entity_id=legal_entity_id,
        )

    def get_exported_package_url(self, execution_id: str) -> str | None:
        """GetExportedPackageUrl: the SAS URL of an export's package; None while F&O answers
        it empty (the package is not written yet: ask again later). The URL is a secret while
        it lives: it never appears in a log line or an error text.

        :raises ValueError: for an empty execution id.
        :raises D365ResponseError: when the answer is not a string (flat or nested).
        :raises D365Error: (a subclass of it) when the call fails.
        """
        execution = require_text(execution_id, "execution_id")
        url: str | None = self._engine.action(
            "GetExportedPackageUrl",
            {"executionId": execution},
            convert=parse_package_url,
            execution_id=execution,
        )
        return url

    def download_package(self, url: str, destination: BinaryIO, *, chunk_size: int) -> int:
        """Stream an exported package from its SAS URL into ``destination`` in reads of
        ``chunk_size`` bytes, with no Authorization header; returns the bytes written.

        :raises D365UntrustedUrlError: ``url`` is not a SAS URL the client may call (see
            :mod:`shared.clients.d365._urls`), before anything is sent.
        :raises D365Error: (a subclass of it) when the download fails.
        """
        url = self._engine.urls.check_sas(url, operation="download_package", what="package URL")
        return self._engine.stream_to(
            self._engine.context("download_package", "GET", url),
            destination,
            chunk_size=chunk_size,
            authorize=False,
        )
