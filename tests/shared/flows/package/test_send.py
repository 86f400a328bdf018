"""The package path of a claimed file up to ImportFromPackage (shared/flows/package/send.py):
every stop and lost answer, at most one import, always a final state."""

from __future__ import annotations

import os
import struct
import time
from datetime import timedelta

import pytest

from shared.clients.d365 import D365ServerError
from shared.flows.package.build import PackageBuilder
from shared.flows.resubmit import ResubmitError
from shared.tracking import TrackedFile, TrackingState
from tests import package_files
from tests.shared.conftest import Domain, scheduled
from tests.shared.flows.package.conftest import (
    Packaged,
    build_packaged,
    imports,
    nothing_sent,
    resubmit,
)


def test_a_valid_package_is_imported_and_ends_processed(packaged: Packaged) -> None:
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    assert record.state is TrackingState.IMPORTING
    assert record.execution_id == f"pkg-{record.record_id}"
    assert record.package_entities == ("Customers V3",)
    final = packaged.until_final(record)
    assert (final.state, final.d365_status) == (TrackingState.PROCESSED, "Succeeded")
    assert final.errors == () and final.error_files == ()
    assert imports(packaged) == 1
    execution = packaged.domain.d365.packages.executions[final.execution_id or ""]
    assert execution.company == "USMF"


def test_a_client_timeout_during_import_is_followed_by_its_execution_id(domain: Domain) -> None:
    packaged = build_packaged(domain, read_timeout=0.5)
    domain.d365.knobs.import_call_seconds = 1.5
    domain.d365.knobs.package_run_seconds = 1
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    assert record.state is TrackingState.IMPORTING
    assert "not re-sent" in (record.last_error or "")
    # F&O is still in the call it never answered: it finishes on its own.
    for _ in range(100):
        if not domain.d365.packages.in_flight:
            break
        time.sleep(0.05)
    final = packaged.until_final(record)
    assert final.state is TrackingState.PROCESSED
    assert imports(packaged) == 1
    assert len([r for r in domain.d365.requests if r.operation == "ImportFromPackage"]) == 1


def test_a_stop_after_importing_was_written_never_imports_twice(
    packaged: Packaged, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Stop(BaseException):
        """The worker dies here."""

    def die(*args: object) -> None:
        raise Stop

    monkeypatch.setattr(packaged.importer, "import_package", die)
    with pytest.raises(Stop):
        packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    [record] = packaged.domain.context.store.list_records().records
    assert record.state is TrackingState.IMPORTING
    monkeypatch.undo()
    packaged.poller.tick()
    packaged.domain.clock.advance(timedelta(hours=2))
    final = packaged.until_final(record)
    assert final.state is TrackingState.TIMED_OUT
    assert f"execution {record.execution_id}" in (final.last_error or "")
    assert imports(packaged) == 0


def test_a_failed_importing_write_sends_nothing_and_the_claim_is_resumed(
    packaged: Packaged,
) -> None:
    packaged.domain.faults.fail("reset", "POST", "$batch", skip=1, times=4)
    with pytest.raises(Exception, match=r"reset|Connection"):
        packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    assert imports(packaged) == 0
    [record] = packaged.domain.context.store.list_records().records
    assert record.state is TrackingState.RECEIVED
    packaged.domain.clock.advance(timedelta(minutes=11))
    final = packaged.until_final(record)
    assert final.state is TrackingState.PROCESSED
    assert imports(packaged) == 1


def test_a_parallel_call_refusal_is_retried_later(packaged: Packaged) -> None:
    packaged.domain.d365.knobs.import_refuse_burst = 1
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    assert record.state is TrackingState.RECEIVED
    assert "in parallel" in (record.last_error or "")
    final = packaged.until_final(record)
    assert final.state is TrackingState.PROCESSED
    assert imports(packaged) == 1


def test_a_package_f_and_o_refuses_ends_import_failed_with_its_text(packaged: Packaged) -> None:
    data = package_files.package([("Customers V3", "c.xml", b"<a/>")], with_manifest=False)
    record = packaged.send("pkg/USMF/bad.zip", data)
    assert record.state is TrackingState.IMPORT_FAILED
    assert "does not contain Manifest.xml" in (record.last_error or "")


def test_a_file_over_max_bytes_takes_the_package_path(packaged: Packaged) -> None:
    packaged.upload_template()
    source = package_files.CUSTOMERS_VALID.read_bytes()
    padded = source.replace(b"</Document>", b"<!--" + b" " * (1024 * 1024) + b"--></Document>")
    record = packaged.send("big/customers.xml", padded)
    assert (record.state, record.api) == (TrackingState.IMPORTING, "package")
    assert "on_too_large" in (record.api_note or "")
    assert packaged.until_final(record).state is TrackingState.PROCESSED
    assert packaged.domain.enqueues() == 0


def test_a_413_from_enqueue_takes_the_package_path(packaged: Packaged) -> None:
    packaged.upload_template()
    packaged.domain.d365.knobs.max_enqueue_bytes = 100
    record = packaged.send("big/customers.xml", package_files.CUSTOMERS_VALID.read_bytes())
    assert (record.state, record.api) == (TrackingState.IMPORTING, "package")
    assert "HTTP 413" in (record.api_note or "")
    assert packaged.until_final(record).state is TrackingState.PROCESSED


def test_a_lost_answer_of_the_importing_write_still_imports_once(packaged: Packaged) -> None:
    # The claim is the first batch; the Importing write (a batch with its schedule entry)
    # lands and its answer is lost: the store reads the row back and the call goes out.
    packaged.domain.faults.fail("lost", "POST", "$batch", skip=1)
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    assert record.state is TrackingState.IMPORTING
    assert packaged.domain.faults.injected["lost"] == 1
    assert packaged.until_final(record).state is TrackingState.PROCESSED
    assert imports(packaged) == 1


@pytest.mark.parametrize(
    ("status", "state"),
    [("Canceled", TrackingState.IMPORT_CANCELED), ("Failed", TrackingState.IMPORT_FAILED)],
)
def test_a_failed_import_resubmitted_goes_through_the_package_path_again(
    packaged: Packaged, status: str, state: TrackingState
) -> None:
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    packaged.domain.d365.knobs.odata_values = {"GetExecutionSummaryStatus": status}
    old = packaged.until_final(record)
    assert old.state is state
    packaged.domain.d365.knobs.odata_values = {}  # the cause is fixed in F&O

    new = resubmit(packaged, old)

    assert (new.state, new.api, new.resubmit_of) == (
        TrackingState.IMPORTING,
        "package",
        old.row_key,
    )
    assert new.execution_id != old.execution_id
    assert packaged.until_final(new).state is TrackingState.PROCESSED
    assert imports(packaged) == 2
    assert packaged.domain.enqueues() == 0


def test_a_timed_out_import_is_resubmitted_only_confirmed_naming_its_execution(
    packaged: Packaged,
) -> None:
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    packaged.domain.d365.knobs.odata_values = {"GetExecutionSummaryStatus": "Unknown"}
    packaged.poller.tick()
    packaged.domain.clock.advance(timedelta(hours=2))
    old = packaged.until_final(record)
    assert (old.state, old.message_id) == (TrackingState.TIMED_OUT, None)
    packaged.domain.d365.knobs.odata_values = {}

    with pytest.raises(ResubmitError) as refused:
        resubmit(packaged, old)
    assert refused.value.status == 409
    assert f"execution {old.execution_id}" in str(refused.value)
    assert "import it twice" in str(refused.value)
    assert "confirm=true" in str(refused.value)
    assert imports(packaged) == 1

    new = resubmit(packaged, old, confirm=True)
    assert packaged.until_final(new).state is TrackingState.PROCESSED
    assert imports(packaged) == 2


def test_an_importing_file_is_not_resubmitted(packaged: Packaged) -> None:
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    assert record.state is TrackingState.IMPORTING

    with pytest.raises(ResubmitError) as refused:
        resubmit(packaged, record)

    assert refused.value.status == 409
    assert "the file is Importing, not final" in str(refused.value)
    assert imports(packaged) == 1


def test_a_refusal_during_a_poll_of_the_importing_record_still_ends_import_failed(
    packaged: Packaged, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = packaged.domain.context.store
    real = packaged.importer.import_package

    def polled_meanwhile(upload: object, record: TrackedFile, route: object) -> str:
        # The poller re-anchors the Importing record while the synchronous call runs.
        store.update(store.get(record.row_key), d365_status="not found yet")
        return real(upload, record, route)

    monkeypatch.setattr(packaged.importer, "import_package", polled_meanwhile)
    data = package_files.package([("Customers V3", "c.xml", b"<a/>")], with_manifest=False)
    record = packaged.send("pkg/USMF/bad.zip", data)

    stored = store.get(record.row_key)
    assert stored.state is TrackingState.IMPORT_FAILED
    assert "does not contain Manifest.xml" in (stored.last_error or "")
    assert imports(packaged) == 0


def test_a_503_that_hid_an_import_f_and_o_took_is_followed_not_sent_again(
    packaged: Packaged, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = packaged.importer.import_package
    taken: list[str | None] = []

    def taken_then_503(upload: object, record: TrackedFile, route: object) -> None:
        real(upload, record, route)  # F&O takes the import...
        taken.append(record.execution_id)
        monkeypatch.setattr(packaged.importer, "import_package", real)
        raise D365ServerError(  # ...but a gateway answers 503: "not taken", as far as we know
            "ImportFromPackage failed: 503", status_code=503, url="https://fno.localhost"
        )

    monkeypatch.setattr(packaged.importer, "import_package", taken_then_503)
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    assert record.state is TrackingState.RECEIVED

    final = packaged.until_final(record)

    assert final.state is TrackingState.PROCESSED
    assert taken == [final.execution_id]
    assert imports(packaged) == 1
    calls = [r for r in packaged.domain.d365.requests if r.operation == "ImportFromPackage"]
    assert len(calls) == 1


def _slow_big_package() -> bytes:
    # Random bytes do not deflate: more than loopback's socket buffers hold, so the PUT
    # blocks while the emulator stops reading.
    return package_files.package([("Customers V3", "Customers V3.xml", os.urandom(24 << 20))])


def test_an_upload_that_would_outlive_its_lease_is_cut_short_and_retried(
    domain: Domain,
) -> None:
    """Recovery never resumes a claim whose upload still runs (no second upload in parallel,
    no late Importing write): the PUT stops before its end, the file waits on the schedule."""
    packaged = build_packaged(
        domain, claim_lease=timedelta(seconds=2), answer_timeout=timedelta(seconds=1)
    )
    domain.d365.knobs.operations = frozenset({"blob_block"})
    domain.d365.knobs.body_read_pause_seconds = 3

    record = packaged.send("pkg/USMF/big.zip", _slow_big_package())

    assert record.state is TrackingState.RECEIVED
    assert "outlived the claim's lease (CLAIM_LEASE)" in (record.last_error or "")
    # Blocks staged meanwhile stay invisible: nothing commits them.
    assert [r for r in domain.d365.requests if r.operation == "blob_block_list"] == []
    assert imports(packaged) == 0
    assert scheduled(domain.context.store, record.record_id) is not None


def test_a_claim_taken_over_during_the_upload_stops_before_importing(
    packaged: Packaged, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poller resumed the claim while this worker uploaded: its Importing write loses,
    and it stops quietly (lease released), leaving the file to the new owner."""
    store = packaged.domain.context.store
    take_lease = packaged.importer.acquire_lease

    def resumed_meanwhile() -> object:
        [claimed] = store.list_records().records
        store.update(claimed, lease_until=packaged.domain.clock() + timedelta(minutes=10))
        return take_lease()

    monkeypatch.setattr(packaged.importer, "acquire_lease", resumed_meanwhile)
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())

    assert record.state is TrackingState.RECEIVED
    assert imports(packaged) == 0
    assert store.import_lease.holder() is None


@pytest.mark.parametrize("status", [401, 403, 404, 408])
def test_an_import_refused_before_f_and_o_took_it_is_retried_like_an_enqueue(
    packaged: Packaged, status: int
) -> None:
    """Finding 13: 401/403/404/408 from ImportFromPackage mean what they mean for the enqueue
    and GetAzureWriteUrl (F&O did not take it): sent again later, never ImportFailed."""
    knobs = packaged.domain.d365.knobs
    knobs.operations = frozenset({"ImportFromPackage"})
    knobs.error_burst, knobs.error_status = 1, status

    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())

    assert record.state is TrackingState.RECEIVED
    assert "not taken by F&O yet, retried at" in (record.last_error or "")
    assert f"HTTP {status}" in (record.last_error or "")
    final = packaged.until_final(record)
    assert final.state is TrackingState.PROCESSED
    assert imports(packaged) == 1


def test_an_import_refused_for_ever_ends_enqueue_failed_at_the_age_limit(
    packaged: Packaged,
) -> None:
    knobs = packaged.domain.d365.knobs
    knobs.operations = frozenset({"ImportFromPackage"})
    knobs.error_burst, knobs.error_status = 1000, 403

    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    packaged.domain.clock.advance(timedelta(hours=2))
    final = packaged.until_final(record)

    assert final.state is TrackingState.ENQUEUE_FAILED
    assert "F&O did not take the file within 1:00:00 (MAX_PENDING_AGE)" in (final.last_error or "")
    assert "HTTP 403" in (final.last_error or "")
    assert imports(packaged) == 0


def test_an_execution_id_f_and_o_answers_instead_of_ours_is_followed_and_both_kept(
    packaged: Packaged,
) -> None:
    """Finding 17: ImportFromPackage's answer names the execution; F&O's is followed."""
    packaged.domain.d365.knobs.import_own_execution_id = True

    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())

    ours = f"pkg-{record.record_id}"
    [fnos] = packaged.domain.d365.packages.executions
    assert fnos != ours and fnos.startswith("CustomersPackage-")
    assert (record.state, record.execution_id, record.sent_execution_id) == (
        TrackingState.IMPORTING,
        fnos,
        ours,
    )
    final = packaged.until_final(record)
    assert (final.state, final.d365_status) == (TrackingState.PROCESSED, "Succeeded")
    assert (final.execution_id, final.sent_execution_id) == (fnos, ours)
    assert imports(packaged) == 1


def test_an_error_nobody_foresaw_in_the_upload_is_recorded_by_its_type_and_retried(
    packaged: Packaged, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last resort: whatever escapes the upload stage is recorded and retried, so the
    file never ends "last error: none"."""
    packaged.upload_template()

    def broken(self: object) -> int:
        raise struct.error("ushort format requires 0 <= number <= 65535 (https://x/?sig=s)")

    monkeypatch.setattr(PackageBuilder, "length", broken)
    record = packaged.send("pkg-plain/USMF/customers.xml", b"<Document/>")

    assert record.state is TrackingState.RECEIVED
    cause = (
        "the package upload failed unexpectedly (struct.error); F&O imported nothing. If it "
        "happens again, report it with the app's log of this file"
    )
    assert cause in (record.last_error or "")
    assert "sig=" not in (record.last_error or "")
    assert nothing_sent(packaged)
    packaged.domain.clock.advance(timedelta(hours=2))
    final = packaged.until_final(record)
    assert final.state is TrackingState.ENQUEUE_FAILED
    assert "last error: not taken by F&O yet, retried at" in (final.last_error or "")
    assert cause in (final.last_error or "")
