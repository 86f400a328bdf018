"""An execution followed to its end (shared/flows/package/follow.py): its status, row errors
and error files, with what could not be had noted and the outcome written all the same."""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from shared.tracking import TrackingState
from tests import package_files
from tests.shared.flows.package.conftest import (
    Packaged,
    zip_of,
)


def test_bad_rows_end_with_row_errors_and_the_error_keys_file(packaged: Packaged) -> None:
    record = packaged.send(
        "pkg/USMF/customers.zip", package_files.customers_package(with_errors=True)
    )
    final = packaged.until_final(record)
    assert (final.state, final.d365_status) == (
        TrackingState.PROCESSED_WITH_ERRORS,
        "PartiallySucceeded",
    )
    assert final.error_count > 0
    [keys] = final.error_files
    container, _, name = keys.partition("/")
    data = packaged.domain.context.blob_service.get_blob_client(container, name).download_blob()
    assert data.readall().startswith(b"RECID\n")
    assert [
        r.headers.get("Authorization")
        for r in packaged.domain.d365.requests
        if r.operation == "blob_get"
    ] == [None]


def test_an_error_keys_file_still_generating_is_noted_not_waited_for(
    packaged: Packaged,
) -> None:
    packaged.domain.d365.knobs.error_keys_seconds = 3600
    record = packaged.send(
        "pkg/USMF/customers.zip", package_files.customers_package(with_errors=True)
    )
    final = packaged.until_final(record)
    assert final.state is TrackingState.PROCESSED_WITH_ERRORS
    assert final.error_files == ()
    assert "still being generated after 10 tries" in (final.last_error or "")


def test_an_unreadable_entity_file_fails_with_its_staging_error_file(packaged: Packaged) -> None:
    data = package_files.package([("Customers V3", "Customers V3.xml", b"<Document><broken")])
    record = packaged.send("pkg/USMF/broken.zip", data)
    final = packaged.until_final(record)
    assert (final.state, final.d365_status) == (TrackingState.IMPORT_FAILED, "Failed")
    [staging] = final.error_files
    assert staging.endswith("/Customers-V3-staging-errors.txt")
    container, _, name = staging.partition("/")
    text = packaged.domain.context.blob_service.get_blob_client(container, name).download_blob()
    assert b"not valid XML" in text.readall()


def test_a_canceled_execution_ends_import_canceled_with_f_and_o_text(packaged: Packaged) -> None:
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    packaged.domain.d365.knobs.odata_values = {"GetExecutionSummaryStatus": "Canceled"}
    final = packaged.until_final(record)
    assert (final.state, final.d365_status) == (TrackingState.IMPORT_CANCELED, "Canceled")


def test_unknown_is_polled_on_until_the_age_limit(packaged: Packaged) -> None:
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    packaged.domain.d365.knobs.odata_values = {"GetExecutionSummaryStatus": "Unknown"}
    packaged.poller.tick()
    packaged.domain.clock.advance(timedelta(seconds=5))
    packaged.poller.tick()
    current = packaged.domain.context.store.get(record.row_key)
    assert current is not None
    assert (current.state, current.d365_status) == (TrackingState.IMPORTING, "Unknown")
    packaged.domain.clock.advance(timedelta(hours=2))
    assert packaged.until_final(record).state is TrackingState.TIMED_OUT


def test_a_staging_error_file_that_answers_404_is_noted_and_the_outcome_written(
    packaged: Packaged,
) -> None:
    """Finding 15: F&O's outcome is final whatever happens to an error file."""
    d365 = packaged.domain.d365
    d365.knobs.odata_values = {"GetImportStagingErrorFileUrl": d365.blobs.write_url("gone.txt")}
    record = packaged.send(
        "pkg/USMF/customers.zip", package_files.customers_package(with_errors=True)
    )

    final = packaged.until_final(record, ticks=10)

    assert (final.state, final.d365_status) == (
        TrackingState.PROCESSED_WITH_ERRORS,
        "PartiallySucceeded",
    )
    assert final.error_count > 0
    [keys] = final.error_files
    assert keys.endswith("/Customers-V3-target-error-keys.txt")
    text = final.last_error or ""
    assert "the staging error file of 'Customers V3': not fetched (D365NotFoundError: " in text
    assert "HTTP 404" in text and f"get it in F&O (execution {final.execution_id})" in text
    assert "sig=" not in text


def test_row_errors_that_cannot_be_read_are_noted_and_the_outcome_written(
    packaged: Packaged,
) -> None:
    """Finding 15: GetExecutionErrors failing every time does not hold F&O's outcome back."""
    knobs = packaged.domain.d365.knobs
    record = packaged.send(
        "pkg/USMF/customers.zip", package_files.customers_package(with_errors=True)
    )
    knobs.operations = frozenset({"GetExecutionErrors"})
    knobs.error_burst, knobs.error_status = 1000, 503

    final = packaged.until_final(record, ticks=10)

    assert final.state is TrackingState.PROCESSED_WITH_ERRORS
    assert (final.errors, final.error_count) == ((), 0)
    assert len(final.error_files) == 1
    text = final.last_error or ""
    assert "the row errors (GetExecutionErrors): not fetched (D365ServerError: " in text
    assert "HTTP 503" in text


def _package_of_entities_with_errors(count: int) -> bytes:
    """A package whose manifest names ``count`` entities, each with bad rows."""
    names = [f"CustCustomerV3Entity{' ' * i}" for i in range(count)]
    manifest = package_files.manifest("CustomersPackage", [(n, "Customers V3.xml") for n in names])
    return zip_of(
        {
            "Manifest.xml": manifest.encode(),
            "PackageHeader.xml": package_files.HEADER.encode(),
            "Customers V3.xml": package_files.CUSTOMERS_WITH_ERRORS.read_bytes(),
        }
    )


def test_error_files_of_many_entities_stop_at_their_time_and_the_outcome_is_written(
    packaged: Packaged,
) -> None:
    """Each entity costs 2 or more F&O calls, plus 10 reads of a keys file still generating:
    with thousands of entities a follow outlived the poll's lease and functionTimeout, and
    the file ended TimedOut. The error files get a quarter of the tick budget."""
    # 0.5 s for error files; the first keys file's reads, 0.2 s apart, outlast it.
    packaged.follower.policy = replace(
        packaged.follower.policy, poll_tick_budget=timedelta(seconds=2), error_file_pause=0.2
    )
    packaged.domain.d365.knobs.error_keys_seconds = 3600
    record = packaged.send("pkg/USMF/many.zip", _package_of_entities_with_errors(12))
    assert record.state is TrackingState.IMPORTING, record.last_error

    started = time.monotonic()
    final = packaged.until_final(record)

    assert time.monotonic() - started < 5
    assert (final.state, final.d365_status) == (
        TrackingState.PROCESSED_WITH_ERRORS,
        "PartiallySucceeded",
    )
    assert final.error_count > 0
    text = final.last_error or ""
    first = "the target error keys file of 'CustCustomerV3Entity': not fetched (it was still"
    assert text.startswith(first)
    assert text.count("the target error keys file") == 1
    assert "the error files of 11 entities ('CustCustomerV3Entity', " in text, text
    assert (
        " and 6 more): not fetched (the 0.5 seconds one poll spends on error files ran out); "
        f"get them in F&O (execution {final.execution_id})"
    ) in text


def test_an_error_file_whose_temporary_copy_fails_is_noted_and_the_outcome_written(
    packaged: Packaged, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An OSError from the spool file (a full disk) escaped both the importer and the poller:
    the file was polled until it ended TimedOut."""
    d365 = packaged.domain.d365
    large = d365.blobs.store_file("large-staging-errors.txt", b"x" * (9 << 20))
    d365.knobs.odata_values = {"GetImportStagingErrorFileUrl": large}
    record = packaged.send(
        "pkg/USMF/customers.zip", package_files.customers_package(with_errors=True)
    )
    assert record.state is TrackingState.IMPORTING
    # Beyond 8 MiB the spool moves to a file in the temporary directory, which is gone.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))

    final = packaged.until_final(record, ticks=10)

    assert final.state is TrackingState.PROCESSED_WITH_ERRORS
    [keys] = final.error_files
    assert keys.endswith("/Customers-V3-target-error-keys.txt")
    assert (
        "the staging error file of 'Customers V3': not fetched (FileNotFoundError writing its "
        "temporary copy: No such file or directory); get it in F&O (execution "
        f"{final.execution_id})"
    ) in (final.last_error or "")
