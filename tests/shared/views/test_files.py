"""The files view: what GET /api/messages answers, its cost in table reads, and its refusals."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shared.tracking import TrackingState
from shared.views import files
from tests.hostile import TEXTS, hostile_settings, weighted
from tests.shared.conftest import Domain
from tests.shared.views.support import (
    OUT_OF_RANGE,
    assert_answered_or_refused,
    enqueued,
    query_params,
)


def test_a_message_is_read_with_two_table_reads(domain: Domain) -> None:
    message_id = enqueued(domain)
    before = len(domain.faults.calls)

    response = files.get_message(domain.context, "{" + message_id.upper() + "}")

    calls = domain.faults.calls[before:]
    assert response.status == 200
    assert response.body["message_id"] == message_id
    assert response.body["state"] == "Enqueued"
    assert response.body["next_poll_at"] is not None
    assert [c.split(" ")[0] for c in calls] == ["GET", "GET"], calls


@pytest.mark.parametrize(
    ("message_id", "code", "text"),
    [
        ("not-a-guid", 400, "message_id 'not-a-guid' is not a GUID"),
        ("00000000-0000-0000-0000-000000000001", 404, "no tracked file has message id"),
    ],
)
def test_a_message_id_that_is_wrong_or_unknown_is_answered_clearly(
    domain: Domain, message_id: str, code: int, text: str
) -> None:
    response = files.get_message(domain.context, message_id)
    assert response.status == code
    assert text in response.body["error"]


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ({"limit": "²"}, "limit '²' is not accepted; expected 1 to 1000"),
        ({"limit": "0"}, "limit '0' is not accepted; expected 1 to 1000"),
        ({"since": "yesterday"}, "since 'yesterday' is not a date-time; expected ISO 8601"),
        ({"state": "Done"}, "unknown state 'Done'; accepted: Received"),
        ({"route": "nope"}, "unknown route 'nope'; configured routes: customers"),
        ({"continuation": "x!"}, "continuation is not a token this API issued"),
        ({"colour": "red"}, "unknown parameter(s) colour; accepted: blob, state"),
        ({"blob": "a.xml", "state": "Processed"}, "blob cannot be combined with state"),
        ({"blob": " / "}, "blob is empty; expected a path inside the inbound container"),
        ({"until": "tomorrow"}, "until 'tomorrow' is not a date-time; expected ISO 8601"),
        ({"blob": "a.xml", "company": "USMF"}, "blob cannot be combined with company"),
        ({"limit": "9" * 5000}, "limit '99999999999999999999' is not accepted; expected 1 to 1000"),
        # Found by the hostile parameters below: each was a query too long for storage, a 503.
        ({"company": "U" * 70_000}, "is not a legal entity id; expected 1-4 letters or digits"),
        ({"prefix": "p" * 70_000}, "prefix is 70,000 characters long; expected a blob path of at"),
        ({"blob": "b" * 70_000}, "blob is 70,000 characters long; expected a blob path of at most"),
        (
            {"since": "0001-01-01T00:00:00+01:00"},
            f"since '0001-01-01T00:00:00+01:00' {OUT_OF_RANGE}",
        ),
        (
            {"until": "9999-12-31T23:00:00-05:00"},
            f"until '9999-12-31T23:00:00-05:00' {OUT_OF_RANGE}",
        ),
    ],
)
def test_bad_query_parameters_get_a_400_that_names_them(
    domain: Domain, params: dict[str, str], text: str
) -> None:
    response = files.list_messages(domain.context, params)
    assert response.status == 400
    assert text in response.body["error"]


def test_an_export_id_that_is_not_a_guid_is_a_400_before_any_read(domain: Domain) -> None:
    before = len(domain.faults.calls)

    response = files.messages(lambda: domain.context, "a/b", {"direction": "export"})

    assert response.status == 400
    assert response.body["error"].startswith("message_id 'a/b' is not a GUID; expected the")
    assert domain.faults.calls[before:] == []


def test_since_before_1970_lists_everything_and_the_far_future_nothing(domain: Domain) -> None:
    enqueued(domain)
    old = files.list_messages(domain.context, {"since": "1969-07-20T20:17:00Z"})
    future = files.list_messages(domain.context, {"since": "9999-01-01T00:00:00Z"})
    assert old.status == future.status == 200
    assert len(old.body["items"]) == 1
    assert future.body["items"] == []


def test_the_latest_version_of_a_blob_is_found_by_its_path(domain: Domain) -> None:
    enqueued(domain)
    blob = f"{domain.folder}/customers/USMF/file.xml"
    response = files.list_messages(domain.context, {"blob": f"d365-inbound/{blob}"})
    assert response.status == 200
    assert response.body["blob"] == blob
    assert response.body["state"] == TrackingState.ENQUEUED.value


def test_error_files_that_did_not_fit_the_record_are_all_in_its_view(domain: Domain) -> None:
    message_id = enqueued(domain)
    store = domain.context.store
    record = store.get_by_message_id(message_id)
    assert record is not None
    written = [
        f"d365-errors/{record.record_id}/Entity-{i:04d}-staging-errors.txt" for i in range(500)
    ]
    store.update(record, error_files=written)

    one = files.get_message(domain.context, message_id).body
    listed = files.list_messages(domain.context, {}).body["items"][0]

    assert one["error_files"] == written
    assert (one["error_file_count"], listed["error_file_count"]) == (500, 500)
    assert 0 < len(listed["error_files"]) < 500
    assert listed["error_files"] == written[: len(listed["error_files"])]
    assert listed["error_files_blob"] == one["error_files_blob"]
    assert one["error_files_blob"].startswith(f"{domain.context.settings.errors_container}/")


@hostile_settings(100)
@given(
    params=query_params(*files._LIST_PARAMS, "direction"),
    message_id=weighted((3, st.none()), (1, TEXTS)),
)
@example(params={"company": "U" * 70_000}, message_id=None)
@example(params={"prefix": "p" * 70_000}, message_id=None)
def test_hostile_query_parameters_answer_a_page_or_a_400_saying_why(
    domain: Domain, params: dict[str, str], message_id: str | None
) -> None:
    assert_answered_or_refused(files.messages(lambda: domain.context, message_id, params), 400, 404)
