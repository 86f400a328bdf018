"""The DMF package export through the client, against the emulator: ExportToPackage (never
re-sent blindly), its status, GetExportedPackageUrl (empty until ready, flat or nested) and the
package's download without Authorization."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from devtools.d365_emulator import Emulator
from shared.clients.d365 import (
    D365Client,
    D365ConnectionError,
    D365HttpError,
    D365UntrustedUrlError,
    ExecutionSummaryStatus,
    RetryPolicy,
)
from tests.shared.clients.d365.support import received

ONCE = RetryPolicy(max_attempts=1)


def test_export_sends_the_documented_parameters_and_reads_the_execution_id(
    d365: Emulator, client: D365Client
) -> None:
    answered = client.export_to_package(
        "CustomersExport", "customers-1", "customers-1", legal_entity_id="USMF"
    )
    assert answered == "customers-1"
    (call,) = received(d365, "ExportToPackage")
    assert json.loads(call.body or b"") == {
        "definitionGroupId": "CustomersExport",
        "packageName": "customers-1",
        "executionId": "customers-1",
        "reExecute": False,
        "legalEntityId": "USMF",
    }


@pytest.mark.parametrize("nested", [False, True])
def test_package_url_is_none_until_ready_then_the_package_downloads_without_a_token(
    d365: Emulator, client: D365Client, nested: bool
) -> None:
    d365.knobs.export_nested_values = nested
    execution = client.export_to_package("GeneralJournalExport", "gj", "gj-1")
    assert execution == "gj-1"
    assert client.get_execution_summary_status("gj-1").status is ExecutionSummaryStatus.EXECUTING
    assert client.get_exported_package_url("gj-1") is None
    d365.clock.advance(2.5)
    assert client.get_execution_summary_status("gj-1").status is ExecutionSummaryStatus.SUCCEEDED
    assert client.get_exported_package_url("gj-1") is None  # written a moment after success
    d365.clock.advance(1)
    url = client.get_exported_package_url("gj-1")
    assert url is not None and "sig=" in url
    package = io.BytesIO()
    size = client.download_package(url, package, chunk_size=1024)
    assert size == len(package.getvalue())
    names = zipfile.ZipFile(package).namelist()
    assert names == ["Manifest.xml", "PackageHeader.xml", "General journal.csv"]
    (get,) = received(d365, "blob_get")
    assert "Authorization" not in get.headers


def test_a_failed_export_has_no_package_and_its_errors_say_why(
    d365: Emulator, client: D365Client
) -> None:
    d365.knobs.package_export_fail = True
    client.export_to_package("CustomersExport", "c", "c-1")
    d365.clock.advance(10)
    assert client.get_execution_summary_status("c-1").status is ExecutionSummaryStatus.FAILED
    assert client.get_exported_package_url("c-1") is None
    errors = client.get_execution_errors("c-1")
    assert "failed: the data project has no active mapping" in errors.errors[0].message


def test_an_unknown_project_is_refused_with_fnos_text(client: D365Client) -> None:
    with pytest.raises(D365HttpError) as caught:
        client.export_to_package("NoSuchProject", "x", "x-1")
    assert caught.value.status_code == 400
    assert "Data project 'NoSuchProject' was not found." in str(caught.value)


def test_a_lost_answer_is_not_sent_again_within_the_call(
    d365: Emulator, client: D365Client
) -> None:
    d365.knobs.operations = frozenset({"ExportToPackage"})
    d365.knobs.drop_after_body_burst = 1
    with pytest.raises(D365ConnectionError) as caught:
        client.export_to_package("CustomersExport", "c", "lost-1", retry=ONCE)
    assert caught.value.sent_body
    assert len(received(d365, "ExportToPackage")) == 1
    assert d365.package_exports.export_calls == 1  # F&O took it all the same
    assert client.get_execution_summary_status("lost-1").status is not None


def test_a_package_url_off_fnos_storage_is_refused_before_any_request(
    d365: Emulator, client: D365Client
) -> None:
    with pytest.raises(D365UntrustedUrlError):
        client.download_package("https://evil.example/dmf/p.zip?sig=x", io.BytesIO(), chunk_size=8)
    assert not received(d365, "blob_get")
