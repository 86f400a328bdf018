"""The lean conditional single-entity writes against the session's Azurite, beside the SDK's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import EdmType, TableClient, UpdateMode

from shared.clients.storage.entities import update
from shared.tracking import TrackingStoreError
from shared.tracking._table import StatusTable

PK = "p"
Same = Callable[[Exception, Exception], None]


def _row(row_key: str, **fields: object) -> dict[str, object]:
    return {"PartitionKey": PK, "RowKey": row_key, **fields}


def _sdk_error(
    table: TableClient, entity: dict[str, object], mode: UpdateMode, etag: str
) -> Exception:
    with pytest.raises(Exception) as caught:
        table.update_entity(
            entity, mode=mode, etag=etag, match_condition=MatchConditions.IfNotModified
        )
    return caught.value


@pytest.mark.parametrize(
    ("mode", "expected"),
    [(UpdateMode.REPLACE, {"a": "new"}), (UpdateMode.MERGE, {"a": "new", "b": "kept"})],
)
def test_a_write_applies_and_answers_the_new_etag(
    table: TableClient, mode: UpdateMode, expected: dict[str, str]
) -> None:
    etag = table.create_entity(_row("r", a="old", b="kept"))["etag"]

    new = update(table, _row("r", a="new"), mode=mode, etag=etag)

    row = table.get_entity(PK, "r")
    assert dict(row) == _row("r", **expected)
    assert new == row.metadata["etag"] != etag


def test_every_stored_value_type_round_trips(table: TableClient) -> None:
    etag = table.create_entity(_row("v"))["etag"]
    when = datetime(2026, 12, 6, 16, 1, 2, 345678, tzinfo=UTC)

    update(
        table,
        _row("v", when=when, big=(2**40, EdmType.INT64), blob=b"\x00\xff", yes=True, x=None),
        mode=UpdateMode.REPLACE,
        etag=etag,
    )

    row = table.get_entity(PK, "v")
    assert (row["when"], row["big"].value, row["blob"], row["yes"]) == (
        when,
        2**40,
        b"\x00\xff",
        True,
    )
    assert "x" not in row


@pytest.mark.parametrize("mode", [UpdateMode.REPLACE, UpdateMode.MERGE])
def test_a_changed_row_is_refused_as_the_sdk_refuses_it(
    table: TableClient, mode: UpdateMode, same_as_sdk: Same
) -> None:
    stale = table.create_entity(_row("r", n=1))["etag"]
    table.update_entity(_row("r", n=2))

    with pytest.raises(ResourceModifiedError) as caught:
        update(table, _row("r", n=9), mode=mode, etag=stale)

    assert (caught.value.status_code, caught.value.error_code) == (
        412,
        "UpdateConditionNotSatisfied",
    )
    same_as_sdk(caught.value, _sdk_error(table, _row("r", n=9), mode, stale))
    assert table.get_entity(PK, "r")["n"] == 2


def test_a_missing_row_is_not_found_as_the_sdk_says(table: TableClient, same_as_sdk: Same) -> None:
    etag = table.create_entity(_row("gone"))["etag"]
    table.delete_entity(PK, "gone")

    with pytest.raises(ResourceNotFoundError) as caught:
        update(table, _row("gone"), mode=UpdateMode.REPLACE, etag=etag)

    assert (caught.value.status_code, caught.value.error_code) == (404, "ResourceNotFound")
    same_as_sdk(caught.value, _sdk_error(table, _row("gone"), UpdateMode.REPLACE, etag))


def test_a_missing_table_is_named_with_its_fix(
    storage_connection_string: str, unique_name: str, same_as_sdk: Same
) -> None:
    missing = TableClient.from_connection_string(storage_connection_string, unique_name)
    etag = "W/\"datetime'2026-12-06T16%3A00%3A00.0000000Z'\""

    with pytest.raises(ResourceNotFoundError) as caught:
        update(missing, _row("r"), mode=UpdateMode.MERGE, etag=etag)

    assert caught.value.error_code == "TableNotFound"
    same_as_sdk(caught.value, _sdk_error(missing, _row("r"), UpdateMode.MERGE, etag))
    with pytest.raises(TrackingStoreError, match=f"status table '{unique_name}' does not exist"):
        StatusTable(missing, partition=PK).merge(_row("r"), etag=etag)
