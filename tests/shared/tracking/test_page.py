"""One page type and one continuation codec for the files', the exports' and the audit listings;
hostile tokens (Hypothesis) are a listing's own row key or refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from azure.data.tables import TableServiceClient
from hypothesis import example, given
from hypothesis import strategies as st

from shared.tracking import ExportStore, Page, TrackingStore, is_record_key
from shared.tracking._audit_rows import is_audit_key
from shared.tracking._exports import _is_record_key
from shared.tracking._page import decode_continuation, encode_continuation
from tests.hostile import HOSTILE, TEXTS, token_of, weighted

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


# -- hostile tokens ------------------------------------------------------------------------


ACCEPTS = {"files": is_record_key, "exports": _is_record_key, "audit": is_audit_key}
_KEYS = weighted(
    (2, st.from_regex(r"\d{13}-[0-9a-f]{32}\n?", fullmatch=True)),
    (1, st.builds(lambda guid, end: f"{guid}{end}", st.uuids(), st.sampled_from(["", "\n"]))),
    (1, st.from_regex(r"[A-Za-z0-9_-]{1,64}-\d{8}T\d{6}-[0-9a-f]{6}\n?", fullmatch=True)),
    (1, TEXTS),
)
"""Row keys of every listing (digits of any script, a trailing newline), and any text."""
TOKENS = weighted(
    (2, _KEYS.map(token_of)),
    (1, _KEYS.map(lambda key: token_of(key) + "=" * 3)),
    (1, TEXTS),
)
"""Tokens of row keys, shaped or not, padded or not, and any text at all."""


@HOSTILE
@given(token=TOKENS, listing=st.sampled_from(sorted(ACCEPTS)))
@example(token=token_of("\u0663" * 13 + "-" + "a" * 32), listing="files")
@example(token=token_of("00000000-0000-0000-0000-000000000000\n"), listing="exports")
def test_a_token_is_a_listings_own_row_key_or_refused_as_not_issued(
    token: str, listing: str
) -> None:
    try:
        key = decode_continuation(token, accepts=ACCEPTS[listing])
    except ValueError as exc:
        assert str(exc) == "continuation is not a token this API issued"
        return
    # Only a key the listing could have issued is used as a bound: printable ASCII, read back.
    assert key.isascii() and key.isprintable(), key
    assert decode_continuation(encode_continuation(key), accepts=ACCEPTS[listing]) == key


@pytest.mark.parametrize(
    ("key", "listing"),
    [
        ("\u0663" * 13 + "-" + "a" * 32, "files"),  # Arabic-Indic digits matched \d
        ("\u0663" * 13 + "-" + "a" * 32, "audit"),
        ("00000000-0000-0000-0000-000000000000\n", "exports"),  # match() with $ took "\n"
        ("daily-20260101T000000-abcdef\n", "exports"),
        ("daily-\u0663" + "0" * 7 + "T000000-abcdef", "exports"),
    ],
)
def test_a_token_of_a_key_no_listing_issues_is_refused(key: str, listing: str) -> None:
    # Found by the test above: each was taken for a row key and used as the page's bound.
    with pytest.raises(ValueError, match="continuation is not a token this API issued"):
        decode_continuation(encode_continuation(key), accepts=ACCEPTS[listing])


@HOSTILE
@given(key=_KEYS)
def test_the_token_of_any_text_reads_back_as_that_text(key: str) -> None:
    try:
        token = encode_continuation(key)
    except UnicodeEncodeError:
        return  # a lone surrogate is no row key: the store never issues one
    assert token.isascii() and "=" not in token
    assert decode_continuation(token, accepts=lambda _: True) == key
