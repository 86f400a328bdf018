"""The package path of the enqueuer and the poller, on Azurite and the emulator: a package,
a plain file wrapped from the template, the execution followed to its end, the import lease,
and the faults at each step (see shared/flows/package.py's docstring)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import tempfile
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError

from shared.clients.d365 import D365Client, D365ServerError, RetryPolicy
from shared.clients.d365 import _client as d365_client
from shared.config.routes import ImportRoutes
from shared.flows import package
from shared.flows.enqueue import EnqueuePolicy, Enqueuer
from shared.flows.package import PackageImporter, PackagePolicy
from shared.flows.poll import Poller, PollPolicy
from shared.flows.resubmit import ResubmitError, Resubmitter
from shared.tracking import TrackedFile, TrackingState
from tests import package_files
from tests.e2e.conftest import TEMPLATES, routes_for
from tests.shared.conftest import FAST, Domain, scheduled

_MANIFEST = "Manifest.xml"


@dataclass
class Packaged:
    """The domain's enqueuer and poller with the package path."""

    domain: Domain
    enqueuer: Enqueuer
    poller: Poller
    importer: PackageImporter

    def upload_template(self, data: bytes | None = None) -> None:
        container = self.domain.context.blob_service.get_container_client(TEMPLATES)
        with contextlib.suppress(ResourceExistsError):
            container.create_container()
        container.upload_blob(
            f"{self.domain.folder}/customers.zip",
            package_files.template() if data is None else data,
            overwrite=True,
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
    routes: ImportRoutes | None = None,
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
        sas_hosts=settings.d365.sas_hosts,
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


_UPLOADS = frozenset({"blob_put", "blob_block", "blob_block_list"})


def _puts(packaged: Packaged) -> list[int | None]:
    """The statuses of the package upload's PUTs (blocks, block list) the emulator answered."""
    return [r.status for r in packaged.domain.d365.requests if r.operation in _UPLOADS]


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
    [put] = [r for r in packaged.domain.d365.requests if r.operation == "blob_block"]
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
    assert scheduled(packaged.domain.context.store, record.record_id) is None
    assert _puts(packaged) == []
    packaged.upload_template()
    final = packaged.until_final(_resubmit(packaged, record))
    assert final.state is TrackingState.PROCESSED


_DEFECT_TEXTS = {
    "bad-deflate": (
        "its deflate data is broken (Error -3 while decompressing data: invalid block type)"
    ),
    "encrypted": "it is encrypted (password-protected zips are not read)",
    "method-99": "it uses compression method 99 (AES); only deflate and no compression are read",
}


def _nothing_sent(packaged: Packaged) -> bool:
    """No GetAzureWriteUrl, no PUT, no ImportFromPackage reached the emulator."""
    operations = {r.operation for r in packaged.domain.d365.requests}
    return not operations & {"GetAzureWriteUrl", "blob_put", "ImportFromPackage"}


@pytest.mark.parametrize("defect", package_files.DEFECTS)
def test_a_broken_template_ends_the_file_at_once_naming_the_template_and_the_defect(
    packaged: Packaged, defect: str
) -> None:
    """Finding 4: zlib.error, RuntimeError and NotImplementedError escaped; the file sat
    Received and ended "last error: none"."""
    template = f"{TEMPLATES}/{packaged.domain.folder}/customers.zip"
    packaged.upload_template(
        package_files.break_member(package_files.template(), _MANIFEST, defect)
    )

    record = packaged.send("pkg-plain/USMF/customers.xml", b"<Document/>")

    assert record.state is TrackingState.ENQUEUE_FAILED
    assert record.last_error == (
        f"template package {template!r} is not a readable zip: member 'Manifest.xml': "
        f"{_DEFECT_TEXTS[defect]}; F&O imported nothing: build the zip again (deflate or no "
        "compression, no password); then resubmit the file (or upload it again)."
    )
    assert scheduled(packaged.domain.context.store, record.record_id) is None
    assert _nothing_sent(packaged)


@pytest.mark.parametrize("defect", package_files.DEFECTS)
def test_a_package_whose_manifest_is_broken_ends_at_once_naming_the_defect(
    packaged: Packaged, defect: str
) -> None:
    """Finding 5: the same for an uploaded .zip whose Manifest.xml is broken."""
    data = package_files.break_member(package_files.customers_package(), _MANIFEST, defect)

    record = packaged.send("pkg/USMF/broken.zip", data)

    assert record.state is TrackingState.ENQUEUE_FAILED
    assert record.last_error == (
        f"package {record.blob!r} is not a readable zip: member 'Manifest.xml': "
        f"{_DEFECT_TEXTS[defect]}; F&O imported nothing: build the zip again (deflate or no "
        "compression, no password); then resubmit the file (or upload it again)."
    )
    assert scheduled(packaged.domain.context.store, record.record_id) is None
    assert _nothing_sent(packaged)


def test_a_manifest_zip_bomb_is_refused_before_it_inflates(packaged: Packaged) -> None:
    """Finding 6: a 127 KB upload whose Manifest.xml inflates to 130 MB peaked at 270 MiB
    in the worker; now it is refused from the directory, naming the limit."""
    blob = packaged.domain.upload("pkg/USMF/bomb.zip", package_files.manifest_bomb(130_000_000))
    client = packaged.domain.context.blob_service.get_blob_client("d365-inbound", blob)

    tracemalloc.start()
    try:
        record = packaged.enqueuer.handle(client)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert record is not None and record.state is TrackingState.ENQUEUE_FAILED
    assert record.last_error == (
        f"package {blob!r} holds member 'Manifest.xml', which declares 130,000,000 bytes, over "
        "the 4,194,304-byte limit of ZIP_MAX_MANIFEST_BYTES; F&O imported nothing: if the zip "
        "is genuine, raise ZIP_MAX_MANIFEST_BYTES; then resubmit the file (or upload it again)."
    )
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1024 / 1024:.1f} MiB"
    assert _nothing_sent(packaged)


def test_a_lying_manifest_header_is_caught_by_what_is_inflated(packaged: Packaged) -> None:
    """A directory that declares a small Manifest.xml over 30 MB of deflate: zipfile stops
    at the declared size, and the check of the data's CRC refuses it."""
    bomb = bytearray(package_files.manifest_bomb(30_000_000))
    central = bytes(bomb).index(b"PK\x01\x02")
    struct.pack_into("<L", bomb, central + 24, 1_000_000)  # its uncompressed size

    tracemalloc.start()
    try:
        record = packaged.send("pkg/USMF/liar.zip", bytes(bomb))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert record.state is TrackingState.ENQUEUE_FAILED
    assert "is not a readable zip: member 'Manifest.xml': Bad CRC-32" in (record.last_error or "")
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1024 / 1024:.1f} MiB"
    assert _nothing_sent(packaged)


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
    assert _imports(packaged) == 0


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
    assert _imports(packaged) == 1
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
    packaged = _build(domain, claim_lease=timedelta(seconds=2), answer_timeout=timedelta(seconds=1))
    domain.d365.knobs.operations = frozenset({"blob_block"})
    domain.d365.knobs.body_read_pause_seconds = 3

    record = packaged.send("pkg/USMF/big.zip", _slow_big_package())

    assert record.state is TrackingState.RECEIVED
    assert "outlived the claim's lease (CLAIM_LEASE)" in (record.last_error or "")
    # Blocks staged meanwhile stay invisible: nothing commits them.
    assert [r for r in domain.d365.requests if r.operation == "blob_block_list"] == []
    assert _imports(packaged) == 0
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
    assert _imports(packaged) == 0
    assert store.import_lease.holder() is None


@pytest.mark.parametrize("status", [400, 403, 413])
def test_a_put_the_storage_refuses_ends_the_file_with_the_fix(
    packaged: Packaged, status: int
) -> None:
    knobs = packaged.domain.d365.knobs
    knobs.operations = frozenset({"blob_block"})
    knobs.error_burst, knobs.error_status = 1, status

    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())

    assert record.state is TrackingState.ENQUEUE_FAILED
    assert f"HTTP {status}" in (record.last_error or "")
    assert "F&O imported nothing" in (record.last_error or "")
    assert "then resubmit the file" in (record.last_error or "")
    assert _puts(packaged) == [status]
    assert _imports(packaged) == 0
    assert scheduled(packaged.domain.context.store, record.record_id) is None
    if status == 413:
        assert "refused a part of the package" in (record.last_error or "")
        assert "through enqueue" not in (record.last_error or "")


@pytest.mark.parametrize("status", [408, 429, 503])
def test_a_put_that_fails_for_now_is_retried_later(packaged: Packaged, status: int) -> None:
    knobs = packaged.domain.d365.knobs
    knobs.operations = frozenset({"blob_block"})
    knobs.error_burst, knobs.error_status = 50, status

    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())

    assert record.state is TrackingState.RECEIVED
    assert f"HTTP {status}" in (record.last_error or "")
    knobs.error_burst = 0
    assert packaged.until_final(record).state is TrackingState.PROCESSED
    assert _imports(packaged) == 1


def test_a_package_route_takes_files_over_the_enqueue_limit(domain: Domain) -> None:
    packaged = _build(domain, default_max_bytes=100)
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    assert record.state is TrackingState.IMPORTING
    assert packaged.until_final(record).state is TrackingState.PROCESSED


@pytest.mark.parametrize("path", ["pkg/USMF/customers.zip", "big/customers.xml"])
def test_a_file_over_the_package_limit_is_rejected_in_package_terms(
    domain: Domain, path: str
) -> None:
    """A package route's file, or an on_too_large file, over the package path's limit."""
    # Over the big route's 1 MiB enqueue limit too.
    packaged = _build(domain, default_max_bytes=100, package_max_bytes=1_500_000)
    data = package_files.customers_package() + b" " * (2 << 20)

    record = packaged.send(path, data)

    assert (record.state, record.reject_reason) == (TrackingState.REJECTED, "TooLarge")
    assert "1,500,000-byte limit of the data management package API" in (record.last_error or "")
    assert "at most 50,000 blocks of 4 MiB" in (record.last_error or "")
    assert "import it through the data management package API" not in (record.last_error or "")
    assert _puts(packaged) == []


def test_a_package_route_over_its_own_max_bytes_is_rejected_naming_it(domain: Domain) -> None:
    raw = [
        {**route, "max_bytes": 1000} if route["name"] == "pkg" else route
        for route in routes_for(domain.folder)
    ]
    packaged = _build(domain, routes=ImportRoutes.from_json(json.dumps(raw)))

    record = packaged.send("pkg/USMF/customers.zip", b"x" * 2000)

    assert (record.state, record.reject_reason) == (TrackingState.REJECTED, "TooLarge")
    assert "1,000-byte limit of the data management package API on route 'pkg'" in (
        record.last_error or ""
    )
    assert "raise max_bytes on the route" in (record.last_error or "")


_IMPORT_LEASE = "RowKey='~lease-package-import'"


@pytest.mark.parametrize(
    "fault",
    [
        ("POST", "", 0),  # the first import creates the lease row
        ("PUT", _IMPORT_LEASE, 0),  # a later one takes the row over
        ("PUT", _IMPORT_LEASE, 1),  # the release after ImportFromPackage answered
    ],
    ids=["acquire-insert", "acquire-takeover", "release"],
)
def test_an_import_lease_write_whose_answer_was_lost_is_still_ours(
    packaged: Packaged, fault: tuple[str, str, int]
) -> None:
    """Issue 17, finding 18: the import goes on at once (the lease is not taken for another
    instance's), and the lease is free for the next file."""
    method, row, skip = fault
    store = packaged.domain.context.store
    if row:
        first = packaged.send("pkg/USMF/first.zip", package_files.customers_package())
        assert first.state is TrackingState.IMPORTING
    packaged.domain.faults.fail("lost", method, row or store.table_name, skip=skip)

    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())

    assert packaged.domain.faults.injected["lost"] == 1
    assert record.state is TrackingState.IMPORTING, record.last_error
    assert store.import_lease.holder() is None
    later = packaged.send("pkg/USMF/later.zip", package_files.customers_package())
    assert later.state is TrackingState.IMPORTING, later.last_error
    assert _imports(packaged) == (3 if row else 2)


def _package_of_many_entities(count: int) -> tuple[bytes, list[str]]:
    """A package whose manifest names ``count`` entities (one file serves them all)."""
    names = [f"CustCustomerV3Entity{' ' * (i % 7)}" for i in range(count)]
    manifest = package_files.manifest("CustomersPackage", [(n, "Customers V3.xml") for n in names])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Manifest.xml", manifest)
        archive.writestr("PackageHeader.xml", package_files.HEADER)
        archive.writestr("Customers V3.xml", package_files.CUSTOMERS_VALID.read_bytes())
    return buffer.getvalue(), [n.strip() for n in names]


def test_a_manifest_of_2000_entities_is_uploaded_once_and_imported(packaged: Packaged) -> None:
    """Finding 3: the entity names of a 2,000-entity manifest were too large for the row, so
    the Importing write failed after the upload, and the file was uploaded again at every
    claim lease until it ended EnqueueFailed "last error: none"."""
    data, names = _package_of_many_entities(2_000)

    record = packaged.send("pkg/USMF/many-entities.zip", data)

    assert record.state is TrackingState.IMPORTING
    assert record.package_entity_count == 2_000
    assert record.package_entities_blob is not None
    assert packaged.domain.context.store.list_package_entities(record) == tuple(names)
    execution = packaged.domain.d365.packages.executions[record.execution_id or ""]
    for _ in range(600):  # the emulator imports the 2,000 entities in the background
        if execution.entities:
            break
        time.sleep(0.1)
    final = packaged.until_final(record)
    assert final.state is TrackingState.PROCESSED
    assert _puts(packaged) == [201, 201]  # one Put Block, one Put Block List: uploaded once
    writes = [r for r in packaged.domain.d365.requests if r.operation == "GetAzureWriteUrl"]
    assert len(writes) == 1
    assert _imports(packaged) == 1


def test_a_package_route_with_an_entity_and_no_template_refuses_a_plain_file_unsent(
    domain: Domain,
) -> None:
    """Finding 9: an .xml went through GetAzureWriteUrl, the PUT and ImportFromPackage before
    F&O refused it; it is Rejected at admission, like any other extension."""
    raw = [
        *routes_for(domain.folder),
        {
            "name": "pkg-entity",
            "prefix": f"{domain.folder}/pkg-entity/{{company}}/",
            "api": "package",
            "definition_group": "CustomersPackage",
            "entity": "Customers V3",
        },
    ]
    packaged = _build(domain, routes=ImportRoutes.from_json(json.dumps(raw)))
    packaged.domain.d365.knobs.package_run_seconds = 1

    plain = packaged.send(
        "pkg-entity/USMF/customers.xml", package_files.CUSTOMERS_VALID.read_bytes()
    )

    assert (plain.state, plain.reject_reason) == (TrackingState.REJECTED, "ExtensionNotAllowed")
    assert plain.last_error == (
        f"{plain.blob!r} does not end with .zip, which package route 'pkg-entity' requires: "
        "without a template it imports data packages only; upload the data package (.zip), or "
        "give the route a template in D365_ROUTES to wrap other files into one"
    )
    assert _nothing_sent(packaged)
    zipped = packaged.send("pkg-entity/USMF/customers.zip", package_files.customers_package())
    assert packaged.until_final(zipped).state is TrackingState.PROCESSED


_UNFIT_BLOB_URLS = {
    "http": ("http://", "http://127.0.0.1:{port}/dmf/", "its scheme is 'http', not https"),
    "ftp": ("ftp://", "ftp://127.0.0.1:{port}/dmf/", "its scheme is 'ftp', not https"),
    "relative": ("/", "/dmf/", "it is not an absolute URL"),
}


@pytest.mark.parametrize("kind", sorted(_UNFIT_BLOB_URLS))
def test_a_blob_url_that_is_no_sas_url_of_f_and_o_storage_ends_the_file_unsent(
    packaged: Packaged, kind: str
) -> None:
    """Finding 8: GetAzureWriteUrl's BlobUrl over plain http is refused before a byte is sent.
    One of another scheme, or relative, was a D365ResponseError retried for a day: the URL
    guard refuses all three the same way."""
    start, shown, problem = _UNFIT_BLOB_URLS[kind]
    d365 = packaged.domain.d365
    url = d365.blobs.write_url("customers.zip")
    unfit = start + url.split("://", 1)[1].split("/", 1)[1] if kind == "relative" else url
    unfit = unfit.replace("https://", start, 1)
    d365.knobs.odata_values = {
        "GetAzureWriteUrl": json.dumps(
            {"BlobId": "{00000000-0000-0000-0000-0000000000b1}", "BlobUrl": unfit}
        )
    }

    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())

    assert record.state is TrackingState.ENQUEUE_FAILED
    text = record.last_error or ""
    assert f"refused the BlobUrl F&O handed out, {shown.format(port=d365.port)}" in text
    assert problem in text
    assert "Nothing was sent to it" in text and "then resubmit the file" in text
    assert "sig=" not in text
    assert _puts(packaged) == []
    assert _imports(packaged) == 0


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
    assert _imports(packaged) == 1


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
    assert _imports(packaged) == 0


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
    assert _imports(packaged) == 1


def _zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _manifest_declaring(encoding: str) -> bytes:
    text = package_files.manifest("CustomersPackage", [("Customers V3", "Customers V3.xml")])
    return text.replace('encoding="utf-8"', f'encoding="{encoding}"', 1).encode()


_UNREADABLE_MANIFESTS = {
    "unknown-encoding": (
        _manifest_declaring("bogus"),
        "declares an encoding Python does not know (unknown encoding: bogus)",
    ),
    "multi-byte-encoding": (
        _manifest_declaring("utf-32"),
        "declares an encoding the XML parser does not read (multi-byte encodings are not "
        "supported)",
    ),
    "not-well-formed": (
        b"<DataManagementPackageManifest><PackageEntityList>",
        "is not well-formed XML (no element found: line 1, column 50)",
    ),
}


@pytest.mark.parametrize("kind", sorted(_UNREADABLE_MANIFESTS))
def test_a_package_whose_manifest_is_not_readable_xml_ends_at_once_naming_it(
    packaged: Packaged, kind: str
) -> None:
    """An encoding="bogus" manifest raised LookupError out of the upload: the file sat
    Received with no last_error and ended "last error: none"; utf-32 raised ValueError and
    was retried for a day."""
    manifest, problem = _UNREADABLE_MANIFESTS[kind]
    data = _zip_of(
        {
            "Manifest.xml": manifest,
            "PackageHeader.xml": package_files.HEADER.encode(),
            "Customers V3.xml": package_files.CUSTOMERS_VALID.read_bytes(),
        }
    )

    record = packaged.send("pkg/USMF/unreadable.zip", data)

    assert record.state is TrackingState.ENQUEUE_FAILED
    assert record.last_error == (
        f"package {record.blob!r} has a Manifest.xml that {problem}; F&O imported nothing: "
        "export the package from F&O again, or save its Manifest.xml as well-formed UTF-8 "
        "XML; then resubmit the file (or upload it again)."
    )
    assert scheduled(packaged.domain.context.store, record.record_id) is None
    assert _nothing_sent(packaged)


def _template_of(manifest: bytes) -> bytes:
    return _zip_of({"Manifest.xml": manifest, "PackageHeader.xml": package_files.HEADER.encode()})


@pytest.mark.parametrize("kind", sorted(_UNREADABLE_MANIFESTS))
def test_a_template_whose_manifest_is_not_readable_xml_ends_the_file_naming_it(
    packaged: Packaged, kind: str
) -> None:
    """The same for a template; one not well-formed was reported as "names 0 entities"."""
    manifest, problem = _UNREADABLE_MANIFESTS[kind]
    packaged.upload_template(_template_of(manifest))
    template = f"{TEMPLATES}/{packaged.domain.folder}/customers.zip"

    record = packaged.send("pkg-plain/USMF/customers.xml", b"<Document/>")

    assert record.state is TrackingState.ENQUEUE_FAILED
    assert record.last_error == (
        f"template package {template!r} has a Manifest.xml that {problem}; export the data "
        "project's package from F&O again and upload it; then resubmit the file (or upload it "
        "again)."
    )
    assert _nothing_sent(packaged)


def test_a_template_input_file_path_too_long_for_a_zip_ends_the_file_naming_it(
    packaged: Packaged,
) -> None:
    """An InputFilePath over 65,535 bytes made the zip writer raise struct.error out of the
    upload (the file sat Received and ended "last error: none")."""
    name = "C" * 65_532 + ".xml"
    packaged.upload_template(package_files.template(input_file=name))
    template = f"{TEMPLATES}/{packaged.domain.folder}/customers.zip"

    record = packaged.send("pkg-plain/USMF/customers.xml", b"<Document/>")

    assert record.state is TrackingState.ENQUEUE_FAILED
    assert record.last_error == (
        f"template package {template!r} names an InputFilePath of 65,536 bytes, and a zip "
        "member's name holds at most 65,535; set InputFilePath in its Manifest.xml to the "
        "data file's name (e.g. 'Customers V3.xml') and upload it again; then resubmit the "
        "file (or upload it again)."
    )
    assert _nothing_sent(packaged)


def test_an_error_nobody_foresaw_in_the_upload_is_recorded_by_its_type_and_retried(
    packaged: Packaged, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last resort: whatever escapes the upload stage is recorded and retried, so the
    file never ends "last error: none"."""
    packaged.upload_template()

    def broken(self: object) -> int:
        raise struct.error("ushort format requires 0 <= number <= 65535 (https://x/?sig=s)")

    monkeypatch.setattr(package._PackageBuilder, "length", broken)
    record = packaged.send("pkg-plain/USMF/customers.xml", b"<Document/>")

    assert record.state is TrackingState.RECEIVED
    cause = (
        "the package upload failed unexpectedly (struct.error); F&O imported nothing. If it "
        "happens again, report it with the app's log of this file"
    )
    assert cause in (record.last_error or "")
    assert "sig=" not in (record.last_error or "")
    assert _nothing_sent(packaged)
    packaged.domain.clock.advance(timedelta(hours=2))
    final = packaged.until_final(record)
    assert final.state is TrackingState.ENQUEUE_FAILED
    assert "last error: not taken by F&O yet, retried at" in (final.last_error or "")
    assert cause in (final.last_error or "")


@pytest.mark.parametrize("replacements", [1, 2])
def test_a_template_replaced_while_it_is_read_never_rejects_the_file(
    packaged: Packaged, replacements: int
) -> None:
    """The template's ranged reads are conditional on its ETag: a new template meanwhile
    (412) ended the inbound file Rejected "Superseded", a false reason. It is read again
    once; replaced again, the file is retried later."""
    packaged.upload_template()
    template = f"{TEMPLATES}/{packaged.domain.folder}/customers.zip"
    for _ in range(replacements):
        packaged.domain.faults.meanwhile("GET", template, packaged.upload_template)
    source = package_files.CUSTOMERS_VALID.read_bytes()

    record = packaged.send("pkg-plain/USMF/customers.xml", source)

    assert packaged.domain.faults.injected["meanwhile"] == replacements
    if replacements == 1:
        assert record.state is TrackingState.IMPORTING, record.last_error
    else:
        assert record.state is TrackingState.RECEIVED
        assert f"template package {template!r} was replaced while it was read, twice" in (
            record.last_error or ""
        )
        assert _nothing_sent(packaged)
    final = packaged.until_final(record)
    assert (final.state, final.reject_reason) == (TrackingState.PROCESSED, None)
    assert _imports(packaged) == 1


def _package_of_entities_with_errors(count: int) -> bytes:
    """A package whose manifest names ``count`` entities, each with bad rows."""
    names = [f"CustCustomerV3Entity{' ' * i}" for i in range(count)]
    manifest = package_files.manifest("CustomersPackage", [(n, "Customers V3.xml") for n in names])
    return _zip_of(
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
    packaged.importer.policy = replace(
        packaged.importer.policy, poll_tick_budget=timedelta(seconds=2), error_file_pause=0.2
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


def _stored_template(manifest_bytes: int) -> bytes:
    """A template (stored, not deflated) whose Manifest.xml is padded to about
    ``manifest_bytes`` with a comment of random hex."""
    manifest = package_files.manifest("CustomersPackage", [("Customers V3", "Customers V3.xml")])
    padding = os.urandom(manifest_bytes // 2).hex()
    return _zip_of(
        {
            "Manifest.xml": f"{manifest}<!-- {padding} -->\n".encode(),
            "PackageHeader.xml": package_files.HEADER.encode(),
        },
        zipfile.ZIP_STORED,
    )


def test_a_package_over_what_a_block_blob_holds_is_refused_before_get_azure_write_url(
    domain: Domain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The package path keeps 1 MiB for what a template adds, but Manifest.xml may be 4 MiB:
    a file near the limit made upload_package raise ValueError after GetAzureWriteUrl,
    retried for a day. Scaled down: a block blob of 1 block of 4 MiB."""
    monkeypatch.setattr(package, "MAX_BLOCKS", 1)
    monkeypatch.setattr(d365_client, "MAX_BLOCKS", 1)
    packaged = _build(domain, package_max_bytes=3 << 20)
    packaged.upload_template(_stored_template(3 << 19))

    record = packaged.send("pkg-plain/USMF/customers.xml", b"x" * (3 << 20))

    assert record.state is TrackingState.ENQUEUE_FAILED
    text = record.last_error or ""
    assert f"the package for {record.blob!r} would be 4,7" in text
    assert "bytes, over the 4,194,304 bytes a block blob holds (1 blocks of 4 MiB)" in text
    assert "F&O imported nothing: split the data into smaller files" in text
    assert _nothing_sent(packaged)
