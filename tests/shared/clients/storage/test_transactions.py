"""The lean entity-group transaction against the session's Azurite, beside the SDK's own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from azure.core.exceptions import ServiceResponseError
from azure.data.tables import (
    EdmType,
    RequestTooLargeError,
    TableClient,
    TableTransactionError,
    UpdateMode,
)

from shared.clients.storage.transactions import submit
from shared.tracking._table import StatusTable, if_match
from shared.tracking._writes import WRITE_ID, write_own
from tests.faults import StorageFaults

PK = "p"


def _row(row_key: str, **fields: object) -> dict[str, object]:
    return {"PartitionKey": PK, "RowKey": row_key, **fields}


def test_each_kind_applies_and_answers_the_new_etags(table: TableClient) -> None:
    table.create_entity(_row("u", a="old", b="kept"))
    merged = table.create_entity(_row("m", a="old", b="kept"))["etag"]
    replaced = table.create_entity(_row("r", a="old", b="gone"))["etag"]
    deleted = table.create_entity(_row("d"))["etag"]

    etags = submit(
        table,
        [
            ("create", _row("c", a="new"), {}),
            ("upsert", _row("u", a="new"), {}),
            ("upsert", _row("n", a="new"), {"mode": UpdateMode.REPLACE}),
            ("update", _row("m", a="new"), {"mode": UpdateMode.MERGE, **if_match(merged)}),
            ("update", _row("r", a="new"), {"mode": UpdateMode.REPLACE, **if_match(replaced)}),
            ("delete", _row("d"), if_match(deleted)),
        ],
    )

    rows = {row["RowKey"]: row for row in table.list_entities()}
    assert {key: dict(row) for key, row in rows.items()} == {
        "c": _row("c", a="new"),
        "u": _row("u", a="new", b="kept"),
        "n": _row("n", a="new"),
        "m": _row("m", a="new", b="kept"),
        "r": _row("r", a="new"),
    }
    assert etags[:5] == [rows[key].metadata["etag"] for key in "cunmr"]
    assert etags[5] == ""


def test_every_stored_value_type_round_trips(table: TableClient) -> None:
    when = datetime(2026, 12, 6, 16, 1, 2, 345678, tzinfo=UTC)
    entity = _row(
        "v",
        text='it\'s ünïcode "quoted"\r\n--changeset_x',
        when=when,
        small=7,
        big=(2**40 + 3, EdmType.INT64),
        negative=(-(2**62), EdmType.INT64),
        blob=b"\x00\xffbytes",
        yes=True,
        no=False,
        ratio=0.25,
        absent=None,
    )

    submit(table, [("create", entity, {})])

    row = table.get_entity(PK, "v")
    assert row["text"] == entity["text"]
    assert row["when"] == when
    assert row["small"] == 7
    assert (row["big"].value, row["big"].edm_type) == (2**40 + 3, EdmType.INT64)
    assert row["negative"].value == -(2**62)
    assert row["blob"] == b"\x00\xffbytes"
    assert (row["yes"], row["no"], row["ratio"]) == (True, False, 0.25)
    assert "absent" not in row


def _sdk_error(table: TableClient, operations: list) -> TableTransactionError:
    with pytest.raises(Exception) as caught:
        table.submit_transaction(operations)
    return caught.value  # type: ignore[return-value]


def test_a_changed_row_fails_its_operation_by_index_as_the_sdk_does(
    table: TableClient, same_as_sdk: Callable[[Exception, Exception], None]
) -> None:
    table.create_entity(_row("a"))
    stale = table.create_entity(_row("b", n=1))["etag"]
    table.update_entity(_row("b", n=2))
    operations = [
        ("upsert", _row("a", n=9), {}),
        ("update", _row("b", n=9), {"mode": UpdateMode.REPLACE, **if_match(stale)}),
    ]

    with pytest.raises(TableTransactionError) as caught:
        submit(table, operations)

    assert (caught.value.index, caught.value.status_code) == (1, 412)
    assert caught.value.error_code == "UpdateConditionNotSatisfied"
    same_as_sdk(caught.value, _sdk_error(table, operations))
    assert [row.get("n") for row in table.list_entities()] == [None, 2]


def test_a_create_that_exists_fails_409_as_the_sdk_does(
    table: TableClient, same_as_sdk: Callable[[Exception, Exception], None]
) -> None:
    table.create_entity(_row("x"))
    operations = [("create", _row("y"), {}), ("create", _row("x"), {})]

    with pytest.raises(TableTransactionError) as caught:
        submit(table, operations)

    assert (caught.value.index, caught.value.status_code) == (1, 409)
    assert caught.value.error_code == "EntityAlreadyExists"
    same_as_sdk(caught.value, _sdk_error(table, operations))
    assert [row["RowKey"] for row in table.list_entities()] == ["x"]


def test_a_missing_table_fails_as_the_sdk_does(
    storage_connection_string: str,
    unique_name: str,
    same_as_sdk: Callable[[Exception, Exception], None],
) -> None:
    missing = TableClient.from_connection_string(storage_connection_string, unique_name)
    operations = [("upsert", _row("a"), {})]

    # Azurite answers it in the failed part (0, 404); the service may answer the whole
    # request 404: both are decoded by the SDK's own code, as submit_transaction does.
    with pytest.raises(TableTransactionError) as caught:
        submit(missing, operations)

    assert (caught.value.index, caught.value.status_code) == (0, 404)
    assert caught.value.error_code == "TableNotFound"
    same_as_sdk(caught.value, _sdk_error(missing, operations))


def test_a_transaction_over_the_size_limit_is_refused_as_too_large(
    table: TableClient, same_as_sdk: Callable[[Exception, Exception], None]
) -> None:
    operations = [
        ("upsert", _row(f"r{i}", **{f"f{j}": "x" * 30_000 for j in range(30)}), {})
        for i in range(6)
    ]

    with pytest.raises(RequestTooLargeError) as caught:
        submit(table, operations)

    assert caught.value.status_code == 413
    same_as_sdk(caught.value, _sdk_error(table, operations))
    assert list(table.list_entities()) == []


def test_a_lost_answer_leaves_the_read_back_to_decide(
    table: TableClient, faults: StorageFaults
) -> None:
    status = StatusTable(table, partition=PK)
    row = _row("w", **{WRITE_ID: "mine"})
    faults.fail("lost", "POST", "$batch")

    written = write_own(
        status, "w", "mine", lambda: status.transact([("create", row, {})])[0], if_match=None
    )

    assert faults.injected["lost"] == 1
    assert faults.count("POST", "$batch") == 1
    assert written.ours
    assert written.etag == table.get_entity(PK, "w").metadata["etag"]


def test_a_lost_answer_raises_the_transport_error(
    table: TableClient, faults: StorageFaults
) -> None:
    faults.fail("lost", "POST", "$batch")

    with pytest.raises(ServiceResponseError, match="answer lost"):
        submit(table, [("create", _row("z"), {})])

    assert [row["RowKey"] for row in table.list_entities()] == ["z"]


@pytest.mark.parametrize(
    ("operation", "error", "text"),
    [
        (("insert", _row("a"), {}), ValueError, "Unexpected operation type 'insert'"),
        (("upsert", _row("a"), {"timeout": 5}), TypeError, r"unsupported options \['timeout'\]"),
        (("upsert", {"PartitionKey": PK, "RowKey": 1}, {}), TypeError, "must be of type string"),
        # The SDK would send it with If-Match: never written unconditionally here.
        (("upsert", _row("a"), {"etag": 'W/"x"'}), TypeError, "a conditional upsert"),
    ],
)
def test_a_bad_operation_is_refused_before_any_request(
    table: TableClient, faults: StorageFaults, operation: tuple, error: type, text: str
) -> None:
    sent = len(faults.calls)

    with pytest.raises(error, match=text):
        submit(table, [("create", _row("b"), {}), operation])

    assert len(faults.calls) == sent
    assert list(table.list_entities()) == []
