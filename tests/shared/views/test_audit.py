"""The audit view: what GET /api/audit answers after real resubmits, and its refusals, worded
as GET /api/messages words its own."""

from __future__ import annotations

import pytest
from hypothesis import given

from shared.tracking import Actor, ActorKind, TrackingState
from shared.views import audit, files, resubmit
from tests.e2e.test_enqueue import VALID
from tests.hostile import hostile_settings
from tests.shared.conftest import Domain
from tests.shared.views.support import OUT_OF_RANGE, assert_answered_or_refused, query_params

ADA = Actor(ActorKind.USER, "Ada Lovelace", object_id="5c2b1c4e-0f1d-4d8e-9a57-2f0f0e1d9c11")


def _resubmitted(domain: Domain, path: str, request_id: str, actor: Actor) -> str:
    """The record key of a file F&O refused, then resubmitted by ``actor``."""
    domain.d365.knobs.max_enqueue_bytes = 16
    refused = domain.deliver(domain.upload(path, VALID))
    assert refused is not None and refused.state is TrackingState.ENQUEUE_FAILED
    domain.d365.knobs.max_enqueue_bytes = None
    headers = {"Idempotency-Key": request_id}
    answer = resubmit.resubmit(lambda: domain.context, refused.row_key, headers, b"", actor=actor)
    assert answer.status == 200, answer.body
    assert answer.body["original"]["resubmitted_by"] == actor.to_dict()
    return refused.row_key


def test_the_trail_lists_who_resubmitted_what_newest_first_and_by_person(domain: Domain) -> None:
    by_key = _resubmitted(domain, "customers/USMF/a.xml", "req-a", Actor.function_key())
    by_ada = _resubmitted(domain, "customers/USMF/b.xml", "req-b", ADA)

    everything = audit.audit(lambda: domain.context, {})
    adas = audit.audit(lambda: domain.context, {"person": " ada LOVELACE "})
    by_id = audit.audit(lambda: domain.context, {"person": ADA.object_id})

    assert everything.status == 200
    items = everything.body["items"]
    assert [item["request_id"] for item in items] == ["req-b", "req-a"]
    assert items[1]["actor"] == {
        "kind": "function key",
        "name": "function key",
        "object_id": "",
        "provider": "",
    }
    assert items[0]["action"] == "resubmit"
    assert items[0]["outcome"] == "done"
    assert items[0]["targets"][0] == by_ada
    assert items[0]["subject"] == f"{domain.folder}/customers/USMF/b.xml"
    assert items[0]["at"].endswith("+00:00")
    assert everything.body["continuation"] is None
    assert adas.body["items"] == by_id.body["items"] == items[:1]
    # Each record names who resubmitted it, as the trail does.
    original = files.get_message(domain.context, by_key).body
    assert original["resubmitted_by"]["name"] == "function key"
    new = files.get_message(domain.context, original["resubmitted_as"]).body
    assert (new["resubmit_by"]["name"], new["resubmit_request"]) == ("function key", "req-a")
    assert new["resubmit_at"] == original["resubmitted_at"] == items[1]["at"]


def test_the_trail_is_paged_with_the_listings_token(domain: Domain) -> None:
    _resubmitted(domain, "customers/USMF/a.xml", "req-a", ADA)
    _resubmitted(domain, "customers/USMF/b.xml", "req-b", ADA)

    first = audit.audit(lambda: domain.context, {"limit": "1"})
    rest = audit.audit(
        lambda: domain.context, {"limit": "1", "continuation": first.body["continuation"]}
    )

    assert [i["request_id"] for i in first.body["items"] + rest.body["items"]] == ["req-b", "req-a"]
    assert rest.body["continuation"] is None


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ({"limit": "0"}, "limit '0' is not accepted; expected 1 to 1000"),
        ({"since": "yesterday"}, "since 'yesterday' is not a date-time; expected ISO 8601"),
        (
            {"until": "9999-12-31T23:00:00-05:00"},
            f"until '9999-12-31T23:00:00-05:00' {OUT_OF_RANGE}",
        ),
        ({"continuation": "x!"}, "continuation is not a token this API issued"),
        ({"state": "Processed"}, "unknown parameter(s) state; accepted: since, until, person"),
        ({"person": "x" * 300}, "person is 300 characters long; expected an object id or a"),
        ({"action": "y" * 257}, "action is 257 characters long; expected an action's name"),
    ],
)
def test_bad_audit_parameters_get_a_400_that_names_them(
    domain: Domain, params: dict[str, str], text: str
) -> None:
    before = len(domain.faults.calls)

    response = audit.audit(lambda: domain.context, params)

    assert response.status == 400
    assert text in response.body["error"]
    assert domain.faults.calls[before:] == []  # refused before any read


def test_a_storage_failure_listing_the_trail_is_a_503_not_a_500(domain: Domain) -> None:
    domain.faults.fail("reset", "GET", "audit", times=50)

    response = audit.audit(lambda: domain.context, {})

    domain.faults.clear()
    assert response.status == 503
    assert response.body["error"].startswith("storage failed or changed while answering")


@hostile_settings(100)
@given(params=query_params(*audit.PARAMS))
def test_hostile_query_parameters_answer_the_trail_or_a_400_saying_why(
    domain: Domain, params: dict[str, str]
) -> None:
    assert_answered_or_refused(audit.audit(lambda: domain.context, params), 400)
