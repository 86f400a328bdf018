"""The package path of the enqueuer and the poller, on Azurite and the emulator: a package,
a plain file wrapped from the template, the execution followed to its end, the import lease,
and the faults at each step (see shared/package_importer.py's docstring)."""

from __future__ import annotations

import contextlib
import io
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError

from shared.d365 import D365Client, RetryPolicy
from shared.enqueuer import EnqueuePolicy, Enqueuer
from shared.package_importer import PackageImporter, PackagePolicy
from shared.poller import Poller, PollPolicy
from shared.resubmit import ResubmitError, Resubmitter
from shared.routing import RouteTable
from shared.tracking import TrackedFile, TrackingState
from tests import package_files
from tests.e2e.conftest import TEMPLATES
from tests.shared.conftest import FAST, Domain


@dataclass
class Packaged:
    """The domain's enqueuer and poller with the package path."""

    domain: Domain
    enqueuer: Enqueuer
    poller: Poller
    importer: PackageImporter

    def upload_template(self) -> None:
        container = self.domain.context.blob_service.get_container_client(TEMPLATES)
        with contextlib.suppress(ResourceExistsError):
            container.create_container()
        container.upload_blob(
            f"{self.domain.folder}/customers.zip", package_files.template(), overwrite=True
        )

    def send(self, path: str, data: bytes) -> TrackedFile:
        blob = self.domain.upload(path, data)
        client = self.domain.context.blob_service.get_blob_client("d365-inbound", blob)
        record = self.enqueuer.handle(client)
        assert record is not None
        return record

    def until_final(self, record: TrackedFile, *, ticks: int = 30) -> TrackedFile:
        for _ in range(ticks):
            current = self.domain.context.store.get(record.row_key)
            assert current is not None
            if current.state.is_terminal and not current.archive_pending:
                return current
            self.domain.clock.advance(timedelta(seconds=3))
            self.domain.d365.clock.advance(3)
            self.poller.tick()
        current = self.domain.context.store.get(record.row_key)
        raise AssertionError(f"not final: {current!r} {current and current.last_error}")


def _build(
    domain: Domain,
    *,
    read_timeout: float = 30.0,
    routes: RouteTable | None = None,
    **policy: Any,
) -> Packaged:
    """The package path of ``domain``; ``policy``: EnqueuePolicy fields to override."""
    context = domain.context
    settings = context.settings
    client = D365Client(
        settings.d365.base_url,
        context.credential,
        read_timeout=read_timeout,
        retry=RetryPolicy(backoff_base=0.01, backoff_max=0.05, default_retry_after=0.01),
    )
    importer = PackageImporter(
        context.store,
        client,
        context.blob_service,
        errors_container=context.blob_service.get_container_client(settings.errors_container),
        policy=PackagePolicy(
            lease_span=timedelta(seconds=read_timeout + 5),
            error_file_pause=0.05,
            first_poll_delay=timedelta(seconds=1),
        ),
        clock=domain.clock,
    )
    enqueuer = Enqueuer(
        context.store,
        client,
        routes or settings.routes,
        context.archiver,
        policy=EnqueuePolicy(
            **{
                "claim_lease": timedelta(minutes=10),
                "answer_timeout": timedelta(seconds=30),
                "first_poll_delay": timedelta(seconds=1),
                "retry": FAST,
                "max_pending_age": timedelta(hours=1),
                **policy,
            }
        ),
        clock=domain.clock,
        packages=importer,
    )
    poller = Poller(
        context.store,
        client,
        enqueuer,
        context.archiver,
        policy=PollPolicy(
            backoff=FAST, lease_margin=timedelta(seconds=5), max_pending_age=timedelta(hours=1)
        ),
        clock=domain.clock,
        packages=importer,
    )
    return Packaged(domain, enqueuer, poller, importer)


@pytest.fixture
def packaged(domain: Domain) -> Iterator[Packaged]:
    built = _build(domain)
    built.domain.d365.knobs.package_run_seconds = 1
    # "Still generating" for 0.2 s, within the importer's 10 reads 0.05 s apart.
    built.domain.d365.knobs.error_keys_seconds = 0.2
    yield built


def _imports(packaged: Packaged) -> int:
    return packaged.domain.d365.packages.import_calls


def _puts(packaged: Packaged) -> list[int | None]:
    """The statuses of the package PUTs the emulator answered."""
    return [r.status for r in packaged.domain.d365.requests if r.operation == "blob_put"]


def test_a_valid_package_is_imported_and_ends_processed(packaged: Packaged) -> None:
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    assert record.state is TrackingState.IMPORTING
    assert record.execution_id == f"pkg-{record.record_id}"
    assert record.package_entities == ("Customers V3",)
    final = packaged.until_final(record)
    assert (final.state, final.d365_status) == (TrackingState.PROCESSED, "Succeeded")
    assert final.errors == () and final.error_files == ()
    assert _imports(packaged) == 1
    execution = packaged.domain.d365.packages.executions[final.execution_id or ""]
    assert execution.company == "USMF"


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


def test_a_plain_file_is_wrapped_from_the_template(packaged: Packaged) -> None:
    packaged.upload_template()
    source = package_files.CUSTOMERS_VALID.read_bytes()
    record = packaged.send("pkg-plain/USMF/customers.xml", source)
    final = packaged.until_final(record)
    assert final.state is TrackingState.PROCESSED
    [put] = [r for r in packaged.domain.d365.requests if r.operation == "blob_put"]
    assert put.body is not None
    with zipfile.ZipFile(io.BytesIO(put.body)) as archive:
        assert archive.read("Customers V3.xml") == source
        assert set(archive.namelist()) == {"Manifest.xml", "PackageHeader.xml", "Customers V3.xml"}
    assert put.body_size == len(put.body)


def test_a_missing_template_ends_the_file_naming_it_and_the_fix(packaged: Packaged) -> None:
    record = packaged.send("pkg-plain/USMF/customers.xml", b"<Document/>")
    assert record.state is TrackingState.ENQUEUE_FAILED
    assert "customers.zip' was not found" in (record.last_error or "")
    assert "upload the data project's exported package" in (record.last_error or "")
    assert "then resubmit the file" in (record.last_error or "")
    assert packaged.domain.context.store.schedule.get(record.record_id) is None
    assert _puts(packaged) == []
    packaged.upload_template()
    final = packaged.until_final(_resubmit(packaged, record))
    assert final.state is TrackingState.PROCESSED


def test_a_client_timeout_during_import_is_followed_by_its_execution_id(domain: Domain) -> None:
    packaged = _build(domain, read_timeout=0.5)
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
    assert _imports(packaged) == 1
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
    assert _imports(packaged) == 0


def test_a_failed_importing_write_sends_nothing_and_the_claim_is_resumed(
    packaged: Packaged,
) -> None:
    packaged.domain.faults.fail("reset", "POST", "$batch", skip=1, times=4)
    with pytest.raises(Exception, match=r"reset|Connection"):
        packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    assert _imports(packaged) == 0
    [record] = packaged.domain.context.store.list_records().records
    assert record.state is TrackingState.RECEIVED
    packaged.domain.clock.advance(timedelta(minutes=11))
    final = packaged.until_final(record)
    assert final.state is TrackingState.PROCESSED
    assert _imports(packaged) == 1


def test_a_held_import_lease_makes_the_file_wait_not_fail(domain: Domain) -> None:
    packaged = _build(domain)
    domain.d365.knobs.package_run_seconds = 1
    other = domain.context.store.import_lease.acquire(
        "other-instance", until=domain.clock() + timedelta(seconds=30)
    )
    assert other is not None
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    assert record.state is TrackingState.RECEIVED
    assert "in flight" in (record.last_error or "")
    assert _imports(packaged) == 0
    # Checked before the upload: a busy environment costs no upload per try.
    assert _puts(packaged) == []
    domain.context.store.import_lease.release(other)
    final = packaged.until_final(record)
    assert final.state is TrackingState.PROCESSED
    assert _imports(packaged) == 1


def test_a_parallel_call_refusal_is_retried_later(packaged: Packaged) -> None:
    packaged.domain.d365.knobs.import_refuse_burst = 1
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    assert record.state is TrackingState.RECEIVED
    assert "in parallel" in (record.last_error or "")
    final = packaged.until_final(record)
    assert final.state is TrackingState.PROCESSED
    assert _imports(packaged) == 1


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


def test_a_lost_answer_of_the_importing_write_still_imports_once(packaged: Packaged) -> None:
    # The claim is the first batch; the Importing write (a batch with its schedule entry)
    # lands and its answer is lost: the store reads the row back and the call goes out.
    packaged.domain.faults.fail("lost", "POST", "$batch", skip=1)
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    assert record.state is TrackingState.IMPORTING
    assert packaged.domain.faults.injected["lost"] == 1
    assert packaged.until_final(record).state is TrackingState.PROCESSED
    assert _imports(packaged) == 1


def _resubmit(packaged: Packaged, record: TrackedFile, *, confirm: bool = False) -> TrackedFile:
    context = packaged.domain.context
    resubmitter = Resubmitter(
        context.store, packaged.enqueuer, context.archiver, context.blob_service
    )
    result = resubmitter.resubmit(record.row_key, request_id="again", confirm=confirm)
    assert result.resubmitted is not None
    assert result.original.resubmitted_as == result.resubmitted.row_key
    return result.resubmitted


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

    new = _resubmit(packaged, old)

    assert (new.state, new.api, new.resubmit_of) == (
        TrackingState.IMPORTING,
        "package",
        old.row_key,
    )
    assert new.execution_id != old.execution_id
    assert packaged.until_final(new).state is TrackingState.PROCESSED
    assert _imports(packaged) == 2
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
        _resubmit(packaged, old)
    assert refused.value.status == 409
    assert f"execution {old.execution_id}" in str(refused.value)
    assert "import it twice" in str(refused.value)
    assert "confirm=true" in str(refused.value)
    assert _imports(packaged) == 1

    new = _resubmit(packaged, old, confirm=True)
    assert packaged.until_final(new).state is TrackingState.PROCESSED
    assert _imports(packaged) == 2


def test_an_importing_file_is_not_resubmitted(packaged: Packaged) -> None:
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    assert record.state is TrackingState.IMPORTING

    with pytest.raises(ResubmitError) as refused:
        _resubmit(packaged, record)

    assert refused.value.status == 409
    assert "the file is Importing, not final" in str(refused.value)
    assert _imports(packaged) == 1
