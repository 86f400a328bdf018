"""The status view: what each HTTP query answers, its cost in table reads, and that it never
answers 500 or shows what it must not."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import SettingsError
from shared.tracking import TrackingState
from shared.views import status
from tests.e2e.test_enqueue import VALID
from tests.shared.conftest import Domain

README = (Path(__file__).parents[3] / "README.md").read_text(encoding="utf-8")
OUT_OF_RANGE = (
    "is out of range; expected a date-time from 1601-01-01T00:00:00Z to 9999-12-31T23:59:59Z"
)


def _enqueued(domain: Domain, path: str = "customers/USMF/file.xml") -> str:
    blob = domain.upload(path, VALID)
    record = domain.deliver(blob)
    assert record is not None
    assert record.message_id
    return record.message_id


def test_a_message_is_read_with_two_table_reads(domain: Domain) -> None:
    message_id = _enqueued(domain)
    before = len(domain.faults.calls)

    response = status.get_message(domain.context, "{" + message_id.upper() + "}")

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
    response = status.get_message(domain.context, message_id)
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
    response = status.list_messages(domain.context, params)
    assert response.status == 400
    assert text in response.body["error"]


@pytest.mark.parametrize(
    ("body", "headers", "code", "text"),
    [
        (b"{", {"Idempotency-Key": "k"}, 400, "the body is not a JSON object: Expecting property"),
        (b"{}", {}, 400, "a request id is required: send an Idempotency-Key header"),
        (b'{"request_id": "a b"}', {}, 400, "request id 'a b' is not accepted"),
    ],
)
def test_a_bad_resubmit_request_gets_a_400_that_says_why(
    domain: Domain, body: bytes, headers: dict[str, str], code: int, text: str
) -> None:
    message_id = _enqueued(domain)
    response = status.resubmit(lambda: domain.context, message_id, headers, body)
    assert response.status == code
    assert text in response.body["error"]


def test_a_storage_failure_during_a_resubmit_is_a_503_and_its_retry_finishes_it(
    domain: Domain,
) -> None:
    domain.d365.knobs.max_enqueue_bytes = 16
    refused = domain.deliver(domain.upload("customers/USMF/retry.xml", VALID))
    assert refused is not None and refused.state is TrackingState.ENQUEUE_FAILED
    domain.d365.knobs.max_enqueue_bytes = None
    domain.faults.fail("reset", "POST", "$batch", times=50)  # the new version's claim

    def resubmit() -> status.ApiResponse:
        headers = {"Idempotency-Key": "k"}
        return status.resubmit(lambda: domain.context, refused.row_key, headers, b"{}")

    failed = resubmit()
    domain.faults.clear()
    done = resubmit()

    assert failed.status == 503
    assert "send it again with the same request id" in failed.body["error"]
    assert done.status == 200, done.body
    assert done.body["resubmitted"]["resubmit_of"] == refused.row_key
    assert domain.enqueues() == 1


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [
        (b"[" * 100_000, 413, "the body is 100,000 bytes; at most 65,536 bytes (64 KiB) are"),
        (b"[" * 60_000, 400, "the body is not a JSON object: it is nested too deeply"),
        (b'{"confirm": "\xff"}', 400, "the body is not a JSON object: it is not UTF-8 text"),
        (b"1" * 5000, 400, "the body is not a JSON object: it holds a number of over 4,300"),
        (b'["confirm"]', 400, "the body is not a JSON object: it is an array; expected e.g. {"),
        (b'{"confirm": "true"}', 400, "confirm in the body is not true or false; expected e.g."),
        (b'{"request_id": 7}', 400, "request_id in the body is not a string; expected e.g. {"),
    ],
)
def test_a_hostile_resubmit_body_is_refused_with_what_is_wrong_not_a_500(
    domain: Domain, body: bytes, code: int, text: str
) -> None:
    message_id = _enqueued(domain)
    headers = {"Idempotency-Key": "k"}

    response = status.resubmit(lambda: domain.context, message_id, headers, body)

    assert (response.status, response.body["error"][: len(text)]) == (code, text)
    assert f'| {code} "{response.body["error"]}" |' in README  # its row, word for word


def test_counts_refuse_unknown_parameters_and_bad_times(domain: Domain) -> None:
    unknown = status.counts(lambda: domain.context, {"state": "Processed"})
    bad = status.counts(lambda: domain.context, {"since": "soon"})
    assert unknown.status == bad.status == 400
    assert "unknown parameter(s) state; accepted: since, until" in unknown.body["error"]
    assert "since 'soon' is not a date-time" in bad.body["error"]


@pytest.mark.parametrize(
    "params",
    [
        {"until": "0001-01-01T00:00:00Z"},
        {"since": "0001-01-01T00:30:00+01:00"},
        {"since": "9999-12-31T23:00:00-05:00"},
        {"until": "9999-12-31T23:00:00-05:00"},
        {"since": "1600-12-31T23:59:59Z"},
    ],
)
def test_counts_with_a_time_past_the_accepted_range_is_a_400_that_names_it(
    domain: Domain, params: dict[str, str]
) -> None:
    [(name, text)] = params.items()

    response = status.counts(lambda: domain.context, params)

    assert response.status == 400
    assert response.body["error"] == f"{name} {text!r} {OUT_OF_RANGE}"


def test_counts_take_the_ends_of_the_accepted_range(domain: Domain) -> None:
    _enqueued(domain)
    earliest = status.counts(lambda: domain.context, {"until": "1601-01-01T00:00:00Z"})
    everything = status.counts(
        lambda: domain.context,
        {"since": "1601-01-01T01:00:00+01:00", "until": "9999-12-31T23:59:59Z"},
    )
    assert earliest.status == everything.status == 200
    assert (earliest.body["since"], earliest.body["total"]) == ("1600-12-31T00:00:00+00:00", 0)
    assert (everything.body["since"], everything.body["total"]) == ("1601-01-01T00:00:00+00:00", 1)


def test_an_export_id_that_is_not_a_guid_is_a_400_before_any_read(domain: Domain) -> None:
    before = len(domain.faults.calls)

    response = status.messages(lambda: domain.context, "a/b", {"direction": "export"})

    assert response.status == 400
    assert response.body["error"].startswith("message_id 'a/b' is not a GUID; expected the")
    assert domain.faults.calls[before:] == []


def test_since_before_1970_lists_everything_and_the_far_future_nothing(domain: Domain) -> None:
    _enqueued(domain)
    old = status.list_messages(domain.context, {"since": "1969-07-20T20:17:00Z"})
    future = status.list_messages(domain.context, {"since": "9999-01-01T00:00:00Z"})
    assert old.status == future.status == 200
    assert len(old.body["items"]) == 1
    assert future.body["items"] == []


def test_the_latest_version_of_a_blob_is_found_by_its_path(domain: Domain) -> None:
    _enqueued(domain)
    blob = f"{domain.folder}/customers/USMF/file.xml"
    response = status.list_messages(domain.context, {"blob": f"d365-inbound/{blob}"})
    assert response.status == 200
    assert response.body["blob"] == blob
    assert response.body["state"] == TrackingState.ENQUEUED.value


def test_settings_that_fail_to_load_answer_503_with_the_problems() -> None:
    def broken() -> None:
        raise SettingsError(["D365_ROUTES: is not set; expected a JSON list of routes"])

    response = status.messages(broken, None, {})
    assert response.status == 503
    assert response.body["problems"] == ["D365_ROUTES: is not set; expected a JSON list of routes"]


def test_any_other_startup_failure_is_a_503_that_shows_no_text() -> None:
    def broken() -> None:
        raise RuntimeError("AccountKey=c2VjcmV0 leaked into an SDK message")

    response = status.messages(broken, "84a383c8-336d-45e4-9933-0c3e8bfb734a", {})
    assert response.status == 503
    assert response.body["error"] == "the app could not start (RuntimeError); see /api/health"


def test_every_final_state_but_processed_counts_as_failed() -> None:
    # A state added to TrackingState (as the package API's were) is counted, not left out.
    final = {state for state in TrackingState if state.is_terminal}
    assert final - {TrackingState.PROCESSED} == status.FAILED_STATES
    assert {TrackingState.IMPORT_FAILED, TrackingState.IMPORT_CANCELED} <= status.FAILED_STATES


def test_a_storage_failure_reading_the_record_to_resubmit_is_a_503_not_a_500(
    domain: Domain,
) -> None:
    message_id = _enqueued(domain)
    domain.faults.fail("reset", "GET", "PartitionKey", times=50)

    response = status.resubmit(lambda: domain.context, message_id, {"Idempotency-Key": "k"}, b"")

    domain.faults.clear()
    assert response.status == 503
    assert response.body["error"].startswith("storage failed or changed while answering")


def test_error_files_that_did_not_fit_the_record_are_all_in_its_view(domain: Domain) -> None:
    message_id = _enqueued(domain)
    store = domain.context.store
    record = store.get_by_message_id(message_id)
    assert record is not None
    files = [
        f"d365-errors/{record.record_id}/Entity-{i:04d}-staging-errors.txt" for i in range(500)
    ]
    store.update(record, error_files=files)

    one = status.get_message(domain.context, message_id).body
    listed = status.list_messages(domain.context, {}).body["items"][0]

    assert one["error_files"] == files
    assert (one["error_file_count"], listed["error_file_count"]) == (500, 500)
    assert 0 < len(listed["error_files"]) < 500
    assert listed["error_files"] == files[: len(listed["error_files"])]
    assert listed["error_files_blob"] == one["error_files_blob"]
    assert one["error_files_blob"].startswith(f"{domain.context.settings.errors_container}/")
