"""Rows that always fit: worst-case records of every row kind written to Azurite (Hypothesis),
and the limits module's cuts, lists and refusals."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from devtools.azurite import Azurite
from shared.clients.d365 import ExecutionError
from shared.tracking import (
    Actor,
    ActorKind,
    AuditOutcome,
    AuditStore,
    ConcurrencyError,
    ExportState,
    ExportStore,
    Lease,
    PackageExportState,
    PackageExportStore,
    TrackedFile,
    TrackingState,
    TrackingStore,
    to_entity,
)
from shared.tracking._codec import from_entity
from shared.tracking._fit import (
    ERRORS_UNITS,
    LIST_UNITS,
    MAX_ENTITY_BYTES,
    MAX_STRING_UNITS,
    TEXT_UNITS,
    RowTooLargeError,
    check,
    cut,
    dumps,
    keep,
    keeps_all,
    request_bytes,
    service_bytes,
    units,
)
from shared.tracking._properties import ERROR_FILES, PACKAGE_ENTITIES, encode_errors
from tests.shared.conftest import scheduled

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROWS = settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
# The characters that cost most: six bytes escaped on the wire (a BMP letter beyond ASCII, a
# control character), two code units (beyond the BMP), or an escape in JSON.
WIDE = ("é", "中", "\U0001f600", "\x01", '"', "\\", "\n", "\u2028", "a")
# A text of up to 50,000 characters, built by repeating a drawn piece (cheap to generate).
TEXTS = st.builds(
    lambda piece, times: (piece * times)[: times * 2],
    st.text(st.sampled_from(WIDE), min_size=1, max_size=6),
    st.integers(0, 25_000),
)
MANY = st.integers(0, 3_000)
WORST = "\U0001f600中" * 25_000
"""50,000 characters, 75,000 UTF-16 code units: every text at its worst."""


@dataclass
class Stores:
    files: TrackingStore
    exports: ExportStore
    audit: AuditStore
    packages: PackageExportStore


@pytest.fixture(scope="module")
def stores(azurite: Azurite) -> Iterator[Stores]:
    """One table and errors container for the whole module (each example uses new keys)."""
    name = "r" + uuid.uuid4().hex[:20]
    tables = TableServiceClient.from_connection_string(azurite.connection_string)
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    errors = blobs.get_container_client(name)
    built = Stores(
        TrackingStore(tables.get_table_client(name), errors_container=errors),
        ExportStore(tables.get_table_client(name), errors_container=errors),
        AuditStore(tables.get_table_client(name)),
        PackageExportStore(tables.get_table_client(name), errors_container=errors),
    )
    built.files.ensure_ready()
    yield built
    tables.delete_table(name)
    errors.delete_container()


_RECORD_TEXTS = [
    f.name
    for f in fields(TrackedFile)
    if f.type in ("str | None", "str")
    and f.name
    not in ("record_id", "row_key", "blob", "blob_etag", "message_id", "etag", "write_id")
]


@ROWS
@given(text=TEXTS, many=MANY)
@example(text=WORST, many=3_000)
def test_a_file_record_of_any_texts_and_lists_is_written(
    stores: Stores, text: str, many: int
) -> None:
    store = stores.files
    blob = f"rows/{uuid.uuid4().hex}/{text[:900]}"
    claimed = store.claim(blob, "e1", modified_at=T0, schedule_at=T0, last_error=text).record
    changes = dict.fromkeys(_RECORD_TEXTS, text)
    actor = Actor(ActorKind.USER, text, object_id=text, provider=text)
    lists = [f"{i}-{text[:300]}" for i in range(many)]
    errors = [ExecutionError(str(i), text[:50], text[:2_000]) for i in range(many)]
    message_id = str(uuid.uuid4())
    history = tuple((text[:30], T0.isoformat()) for _ in range(many))
    record = store.update(claimed, state=TrackingState.ENQUEUED, d365_status=text)
    record = store.update(
        replace(record, history=(*record.history, *history)),
        **changes,
        resubmit_by=actor,
        resubmitted_by=actor,
        released_by=actor,
        state=TrackingState.PROCESSING,
        message_id=message_id,
        errors=tuple(errors),
        error_count=many,
        package_entities=lists,
        error_files=lists,
        index_message=True,
        schedule_at=T0 + timedelta(minutes=1),
    )

    assert store.get(record.row_key) == record
    assert store.get_by_message_id(message_id) == record
    assert record.resubmit_by is not None and record.resubmit_by.kind is ActorKind.USER
    assert record.released_by is not None and record.released_by.kind is ActorKind.USER
    assert len(record.history) + record.history_dropped == many + 3
    assert record.history[-1][0] == TrackingState.PROCESSING.value
    assert store.list_package_entities(record) == tuple(lists)
    assert store.list_error_files(record) == tuple(lists)
    assert record.package_entity_count == record.error_file_count == many
    assert scheduled(store, record.record_id) is not None
    if units(text) > TEXT_UNITS:
        assert record.last_error is not None and record.last_error.endswith(" characters cut]")
    errors_fields = store.store_errors(record, errors, raw=text)
    finished = store.update(record, **errors_fields, state=TrackingState.PROCESSED_WITH_ERRORS)
    assert store.load_errors(store.get(finished.row_key)) == tuple(errors)


@ROWS
@given(text=TEXTS, many=MANY)
@example(text=WORST, many=3_000)
def test_an_audit_entry_of_any_texts_is_written_and_found_again(
    stores: Stores, text: str, many: int
) -> None:
    actor = Actor(ActorKind.USER, text, object_id=text, provider=text)
    targets = [f"{i}-{text[:300]}" for i in range(max(many, 1))]
    request_id = uuid.uuid4().hex

    entry = stores.audit.record(
        text, actor=actor, request_id=request_id, targets=targets, subject=text
    )
    done = stores.audit.complete(entry, AuditOutcome.REFUSED, detail=text, made=[text])

    assert stores.audit.get(entry.row_key) == done
    again = stores.audit.record(text, actor=actor, request_id=request_id, targets=targets)
    assert again == done
    assert done.request_id == request_id


@ROWS
@given(text=TEXTS, many=MANY, deliveries=st.integers(1, 3))
@example(text=WORST, many=3_000, deliveries=3)
def test_an_export_record_of_any_texts_and_lists_is_written(
    stores: Stores, text: str, many: int, deliveries: int
) -> None:
    store = stores.exports
    message_id = str(uuid.uuid4())
    record = store.dequeued(
        message_id=message_id, route=text, activity_id=text, container=text, target=text
    )
    # A message re-delivered ``many`` times before: as long a history as a record can hold.
    history = tuple(("ExportFailed", T0.isoformat(), text) for _ in range(many))
    record = replace(record, history=(*record.history, *history))
    for _ in range(deliveries):
        record = store.failed(record, text)
        record = store.dequeued(
            message_id=message_id, route=text, activity_id=text, container=text, target=text
        )
    blobs = [f"{text[:200]}/{i}" for i in range(many)]
    record = store.acked(store.downloaded(record, blobs, 1))

    assert store.get(message_id) == record
    assert record.dequeue_count == deliveries + 1
    assert len(record.history) + record.history_dropped == many + 2 * deliveries + 3
    assert record.history[-1][0] == "Acked"
    assert len(record.history) <= 50
    assert store.list_blobs(record) == tuple(blobs)
    assert record.blob_count == many


@ROWS
@given(text=TEXTS, many=MANY, changes=st.integers(1, 3))
@example(text=WORST, many=3_000, changes=3)
def test_a_package_export_record_of_any_texts_and_lists_is_written(
    stores: Stores, text: str, many: int, changes: int
) -> None:
    store = stores.packages
    execution_id = f"rows-20260101T000000-{uuid.uuid4().hex[:6]}"
    record = store.scheduled(
        execution_id=execution_id,
        route=text,
        definition_group=text,
        legal_entity=text,
        container=text,
        target=text,
        slot=T0,
    )
    # A run followed ``many`` times before: as long a history as a record can hold.
    history = tuple(("Executing", T0.isoformat(), text) for _ in range(many))
    record = replace(record, history=(*record.history, *history))
    for attempt in range(changes):
        record = store.change(
            record,
            PackageExportState.EXECUTING,
            reason=f"{attempt} {text}",
            fno_execution_id=text,
            d365_status=text,
            error=text,
        )
    blobs = [f"{text[:200]}/{i}" for i in range(many)]
    record = store.downloaded(record, blobs, 1, reason=text, d365_status=text, fno_errors=text)

    assert store.get(execution_id) == record
    assert len(record.history) <= 50
    assert len(record.history) + record.history_dropped == many + changes + 2
    assert record.history[-1][0] == PackageExportState.DELIVERED.value
    assert store.list_blobs(record) == tuple(blobs)
    assert record.blob_count == many
    failed = store.failed(record, text, blobs=blobs)
    assert store.get(execution_id) == failed
    assert store.list_blobs(failed) == tuple(blobs)


def test_an_export_record_written_by_another_writer_meanwhile_is_not_written_over(
    stores: Stores,
) -> None:
    message_id = str(uuid.uuid4())
    read = stores.exports.dequeued(
        message_id=message_id, route="r", activity_id="a", container="c", target="t"
    )
    stores.exports.failed(read, "the other writer's")
    execution_id = f"rows-20260101T000000-{uuid.uuid4().hex[:6]}"
    run = stores.packages.scheduled(
        execution_id=execution_id,
        route="r",
        definition_group="g",
        legal_entity="e",
        container="c",
        target="t",
        slot=T0,
    )
    stores.packages.change(run, PackageExportState.REQUESTED)

    with pytest.raises(ConcurrencyError) as export_refused:
        stores.exports.acked(read)
    with pytest.raises(ConcurrencyError) as package_refused:
        stores.packages.change(run, PackageExportState.EXECUTING)

    assert str(export_refused.value) == (
        f"export record {message_id} was changed by another writer"
    )
    assert str(package_refused.value) == (
        f"package export {execution_id} was changed by another writer"
    )
    assert stores.exports.get(message_id).state == ExportState.EXPORT_FAILED
    assert stores.packages.get(execution_id).state == PackageExportState.REQUESTED


@ROWS
@given(text=TEXTS)
@example(text=WORST)
def test_leases_of_any_holder_are_written(stores: Stores, text: str) -> None:
    route = uuid.uuid4().hex
    held = stores.exports.lease(route).acquire(text, until=T0 + timedelta(days=9_000))
    assert held is not None
    assert stores.exports.lease(route).holder() == cut(text)
    poll = stores.files.schedule
    lease = poll.lease.acquire(text, until=T0)
    if lease is not None:  # another example's lease may run still: it is the same row
        poll.lease.release(lease, watermark=T0)
        assert poll.lease.last().watermark == T0
    package = Lease(stores.files._table, f"test-{route}")
    assert package.acquire(text, until=T0 + timedelta(days=9_000)) is not None


def test_a_text_is_cut_with_a_marker_and_never_in_a_character() -> None:
    text = "é\U0001f600" * 10_000
    short = cut(text, 1_000)
    assert units(short) <= 1_000
    assert short.endswith(f"… [{len(text) - short.index('…'):,} characters cut]")
    assert short[: short.index("…")] == text[: short.index("…")]
    assert cut(short, 1_000) == short
    assert cut("short", 1_000) == "short"


def test_keep_takes_the_newest_entries_that_fit() -> None:
    entries = [["Dequeued", str(i), "é" * 100] for i in range(100)]
    kept = keep(entries, limit=1_000, newest=True)
    assert kept == entries[-len(kept) :]
    assert 0 < len(kept) < 10
    assert keep(entries, limit=1_000) == entries[: len(kept)]


def test_the_largest_record_the_codec_can_make_fits_both_measures() -> None:
    record = TrackedFile(
        record_id="0" * 32,
        row_key="0" * 46,
        blob=WORST,
        blob_etag=WORST,
        state=TrackingState.RECEIVED,
        received_at=T0,
        updated_at=T0,
        **dict.fromkeys(_RECORD_TEXTS, WORST),
        errors=tuple(ExecutionError(WORST, WORST, WORST) for _ in range(10)),
        history=tuple((WORST, WORST) for _ in range(100)),
        package_entities=(WORST,) * 100,
        error_files=(WORST,) * 100,
        resubmit_by=Actor(ActorKind.USER, WORST, object_id=WORST, provider=WORST),
        resubmitted_by=Actor(ActorKind.APPLICATION, WORST, object_id=WORST, provider=WORST),
    )
    entity = to_entity(record)
    assert max(service_bytes(entity), request_bytes(entity)) < MAX_ENTITY_BYTES
    assert all(units(v) <= MAX_STRING_UNITS for v in entity.values() if isinstance(v, str))


def test_a_row_that_would_not_fit_is_refused_naming_the_property() -> None:
    with pytest.raises(RowTooLargeError, match=r"property 'notes' holds 40,000 UTF-16"):
        check({"PartitionKey": "files", "RowKey": "k", "notes": "x" * 40_000})
    with pytest.raises(RowTooLargeError, match=r"is [\d,]+ bytes; an entity takes 1,048,576"):
        check({"PartitionKey": "files", "RowKey": "k", **{f"p{i}": "é" * 30_000 for i in range(8)}})
    with pytest.raises(RowTooLargeError, match="has 253 properties"):
        check({"PartitionKey": "files", "RowKey": "k", **{f"p{i}": 1 for i in range(253)}})


# -- a list at the edge of what the row keeps whole ------------------------------------------------

SHORT = st.text(st.sampled_from(WIDE), max_size=20)


def _json_of_units(entries: list[str], total: int) -> list[str]:
    """``entries`` with the last one padded so that their JSON list is ``total`` units."""
    padding = total - units(dumps(entries))
    assert padding >= 0
    return [*entries[:-1], entries[-1] + "a" * padding]


@ROWS
@given(
    entries=st.lists(SHORT, min_size=1, max_size=60),
    delta=st.integers(-4, 4),
)
@example(entries=[f"out/{i:03d}.xml" for i in range(79)], delta=0)
@example(entries=[f"out/{i:03d}.xml" for i in range(79)], delta=-1)
def test_a_list_at_the_edge_of_the_row_is_kept_whole_or_in_a_blob(
    stores: Stores, entries: list[str], delta: int
) -> None:
    """The row kept the whole list when its JSON fit, but ``keep`` counted a separator after
    the last entry: at 7,999-8,000 units the row held one entry fewer than its count, and no
    blob held the rest."""
    items = _json_of_units(entries, LIST_UNITS + delta)
    assert keeps_all(items, limit=LIST_UNITS) is (delta <= 0)
    assert keep(items, limit=units(dumps(items))) == items
    assert keep(items, limit=units(dumps(items)) - 1) == items[:-1]

    exports = stores.exports
    message_id = str(uuid.uuid4())
    record = exports.dequeued(
        message_id=message_id, route="r", activity_id="a", container="c", target="t"
    )
    record = exports.get(exports.downloaded(record, items, 1).message_id)
    assert record.blob_count == len(items)
    assert (record.blobs_blob is None) is (delta <= 0)
    if record.blobs_blob is None:
        assert record.blobs == tuple(items)
    assert exports.list_blobs(record) == tuple(items)

    files = stores.files
    claimed = files.claim(f"rows/{message_id}", "e1", modified_at=T0, schedule_at=T0).record
    record = files.get(files.update(claimed, package_entities=items, error_files=items).row_key)
    for spec, whole in (
        (PACKAGE_ENTITIES, files.list_package_entities(record)),
        (ERROR_FILES, files.list_error_files(record)),
    ):
        assert getattr(record, spec.count) == len(items)
        assert (getattr(record, spec.blob) is None) is (delta <= 0)
        if getattr(record, spec.blob) is None:
            assert getattr(record, spec.name) == tuple(items)
        assert whole == tuple(items)


@ROWS
@given(
    messages=st.lists(SHORT, min_size=1, max_size=60),
    raw=SHORT,
    delta=st.integers(-4, 4),
)
def test_errors_at_the_edge_of_the_row_are_kept_whole_or_in_a_blob(
    stores: Stores, messages: list[str], raw: str, delta: int
) -> None:
    """The same edge for execution errors and F&O's raw text, which share ERRORS_UNITS."""
    errors = [ExecutionError(str(i), "f", message) for i, message in enumerate(messages)]
    padding = ERRORS_UNITS + delta - units(raw) - units(encode_errors(errors))
    last = errors[-1]
    errors[-1] = ExecutionError(last.record_id, last.field, last.message + "a" * padding)
    files = stores.files
    claimed = files.claim(f"rows/{uuid.uuid4()}", "e1", modified_at=T0, schedule_at=T0).record

    record = files.get(files.update(claimed, **files.store_errors(claimed, errors, raw)).row_key)

    assert record.error_count == len(errors)
    assert (record.errors_blob is None) is (delta <= 0)
    if record.errors_blob is None:
        assert (record.errors, record.errors_raw) == (tuple(errors), raw)
    assert files.load_errors(record) == tuple(errors)


def test_a_record_linked_before_the_outgoing_request_id_had_its_own_column_is_read_so() -> None:
    record = TrackedFile(
        record_id="0" * 32,
        row_key="1" * 13 + "-" + "0" * 32,
        blob="a.xml",
        blob_etag="e",
        state=TrackingState.ENQUEUE_FAILED,
        received_at=T0,
        updated_at=T0,
        resubmitted_as="2" * 13 + "-" + "0" * 32,
        resubmit_request="click-1",  # where the link kept its request id before
    )

    read = from_entity(to_entity(record))

    assert (read.resubmitted_request, read.resubmit_request) == ("click-1", None)
    came_from = from_entity(to_entity(replace(record, resubmit_of="3" * 13 + "-" + "0" * 32)))
    assert (came_from.resubmitted_request, came_from.resubmit_request) == ("click-1", "click-1")
