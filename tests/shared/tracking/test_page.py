"""One page type and one continuation codec for the files' and the exports' listings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from azure.data.tables import TableServiceClient

from shared.tracking import ExportStore, Page, TrackingStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _exports(store: TrackingStore, connection_string: str) -> ExportStore:
    service = TableServiceClient.from_connection_string(connection_string)
    return ExportStore(service.get_table_client(store.table_name))


def test_both_listings_page_with_one_type_and_one_token_form(
    store: TrackingStore, storage_connection_string: str
) -> None:
    exports = _exports(store, storage_connection_string)
    for i in range(3):
        store.claim(f"p/{i}.xml", "e", modified_at=T0)
        exports.dequeued(
            message_id=f"00000000-0000-0000-0000-00000000000{i}",
            route="r",
            activity_id="a",
            container="c",
            target=f"t{i}",
        )
    files = store.list_records(limit=2)
    messages = exports.list_records(limit=2)
    assert isinstance(files, Page) and isinstance(messages, Page)
    for page in (files, messages):
        assert len(page.records) == 2
        assert page.continuation is not None
        assert "=" not in page.continuation  # base64url, unpadded
    assert len(store.list_records(limit=2, continuation=files.continuation).records) == 1
    rest = exports.list_records(limit=2, continuation=messages.continuation)
    assert [r.message_id for r in rest.records] == ["00000000-0000-0000-0000-000000000002"]
    assert rest.continuation is None


def test_a_token_of_one_listing_is_refused_by_the_other(
    store: TrackingStore, storage_connection_string: str
) -> None:
    exports = _exports(store, storage_connection_string)
    for i in range(2):
        store.claim(f"p/{i}.xml", "e", modified_at=T0)
    token = store.list_records(limit=1).continuation
    assert token is not None
    with pytest.raises(ValueError, match="not a token this API issued"):
        exports.list_records(continuation=token)
    with pytest.raises(ValueError, match="not a token this API issued"):
        store.list_records(continuation="!!not base64!!")
