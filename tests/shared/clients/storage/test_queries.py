"""The lean entity query against the session's Azurite, beside the SDK's ``query_entities``."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty, TableClient, TableEntity
from azure.data.tables._deserialize import TablesEntityDatetime

from shared.clients.storage.queries import query
from shared.tracking import TrackingStoreError
from shared.tracking._table import StatusTable
from tests.faults import StorageFaults

PK = "p"
Same = Callable[[Exception, Exception], None]
WHEN = datetime(2026, 12, 6, 16, 1, 2, 345678, tzinfo=UTC)


def _row(row_key: str, **fields: object) -> dict[str, object]:
    return {"PartitionKey": PK, "RowKey": row_key, **fields}


def _both(table: TableClient, query_filter: str, **options: Any) -> list[TableEntity]:
    """The lean query's rows, asserted equal to the SDK's in value, type and metadata."""
    lean = list(query(table, query_filter, **options))
    sdk = list(table.query_entities(query_filter, **options))
    assert [_typed(e) for e in lean] == [_typed(e) for e in sdk]
    assert [e.metadata for e in lean] == [e.metadata for e in sdk]
    for mine, theirs in zip(lean, sdk, strict=True):
        assert type(mine.metadata["timestamp"]) is type(theirs.metadata["timestamp"])
        assert _text(mine.metadata["timestamp"]) == _text(theirs.metadata["timestamp"])
    return lean


def _text(moment: TablesEntityDatetime | None) -> str | None:
    return None if moment is None else moment.tables_service_value


def _typed(entity: TableEntity) -> list[tuple[str, type, object]]:
    """Each property with its Python type (NaN made comparable)."""
    return [(k, type(v), _comparable(v)) for k, v in entity.items()]


def _comparable(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, TablesEntityDatetime):
        return (value, value.tzinfo, value.tables_service_value)
    return value


def test_every_value_type_reads_as_the_sdk_reads_it(table: TableClient) -> None:
    guid = uuid.UUID("c9da6455-213d-42c9-9a79-3e9149a57833")
    table.create_entity(
        _row(
            "v",
            text="it's",
            small=7,
            negative=-(2**31),
            big=(2**40, EdmType.INT64),
            small64=(5, EdmType.INT64),
            when=WHEN,
            whole=WHEN.replace(microsecond=0),
            blob=b"\x00\xff",
            empty=b"",
            yes=True,
            no=False,
            ratio=0.25,
            nan=float("nan"),
            inf=float("inf"),
            ninf=float("-inf"),
            guid=guid,
        )
    )

    (row,) = _both(table, "PartitionKey eq @pk", parameters={"pk": PK})

    assert row["when"] == WHEN and isinstance(row["when"], TablesEntityDatetime)
    assert row["big"] == EntityProperty(2**40, EdmType.INT64)
    assert row["blob"] == b"\x00\xff" and row["guid"] == guid and row["yes"] is True
    assert math.isnan(row["nan"]) and row["inf"] == math.inf
    assert row.metadata["etag"].startswith('W/"datetime')


def test_a_filter_takes_parameters_as_the_sdk_substitutes_them(table: TableClient) -> None:
    for index, name in enumerate(["a'b", "plain", "a'b"]):
        table.create_entity(
            _row(
                f"r{index}",
                name=name,
                when=WHEN + timedelta(hours=index),
                n=(2**40 + index, EdmType.INT64),
            )
        )

    rows = _both(
        table,
        "PartitionKey eq @pk and name eq @name and when ge @since and n ge @n",
        parameters={"pk": PK, "name": "a'b", "since": WHEN + timedelta(minutes=1), "n": 2**40},
    )

    assert [r["RowKey"] for r in rows] == ["r2"]


def test_select_returns_only_the_named_properties(table: TableClient) -> None:
    table.create_entity(_row("s", a="1", b="2", when=WHEN))

    (row,) = _both(table, "PartitionKey eq @pk", parameters={"pk": PK}, select=["a", "when"])

    assert dict(row) == {"a": "1", "when": WHEN}


def test_pages_follow_the_continuation_to_the_last_row(
    table: TableClient, faults: StorageFaults
) -> None:
    for index in range(7):
        table.create_entity(_row(f"r{index:02}", n=index))

    rows = _both(table, "PartitionKey eq @pk", parameters={"pk": PK}, results_per_page=2)

    assert [r["n"] for r in rows] == list(range(7))
    assert faults.count("GET") == 2 * 4  # four pages each, the lean query's and the SDK's
    lean_pages = [call for call in faults.calls if call.startswith("GET ")][:4]
    assert "NextRowKey" not in lean_pages[0]
    assert all("NextPartitionKey=" in page and "NextRowKey=" in page for page in lean_pages[1:])


def test_an_empty_result_is_empty(table: TableClient) -> None:
    table.create_entity(_row("x"))

    assert _both(table, "PartitionKey eq @pk", parameters={"pk": "other"}) == []


def test_a_missing_table_raises_what_the_sdk_raises(table: TableClient, same_as_sdk: Same) -> None:
    table.delete_table()

    with pytest.raises(ResourceNotFoundError) as lean:
        list(query(table, "PartitionKey eq @pk", parameters={"pk": PK}))
    with pytest.raises(ResourceNotFoundError) as sdk:
        list(table.query_entities("PartitionKey eq @pk", parameters={"pk": PK}))

    same_as_sdk(lean.value, sdk.value)
    assert lean.value.error_code == "TableNotFound"  # type: ignore[attr-defined]
    with pytest.raises(TrackingStoreError, match="does not exist"):
        list(StatusTable(table).query([], {}))


def test_a_failed_page_is_retried_by_the_pipeline(
    table: TableClient, faults: StorageFaults
) -> None:
    for index in range(3):
        table.create_entity(_row(f"r{index}", n=index))
    faults.fail("reset", "GET")
    faults.fail("lost", "GET", "NextRowKey")

    rows = query(table, "PartitionKey eq @pk", parameters={"pk": PK}, results_per_page=2)

    assert [r["n"] for r in rows] == [0, 1, 2]
    assert faults.injected == {"reset": 1, "lost": 1}
    assert faults.count("GET") == 4
