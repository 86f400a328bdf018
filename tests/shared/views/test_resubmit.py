"""The resubmit view: a bad or hostile request is a 400 or 413 that says why, a storage failure
a 503 whose retry finishes the resubmit."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.tracking import Actor, TrackingState
from shared.views import resubmit
from shared.views.response import ApiResponse
from tests.e2e.test_enqueue import VALID
from tests.shared.conftest import Domain
from tests.shared.views.support import HOSTILE_BODIES, enqueued

KEY = Actor.function_key()
README = (Path(__file__).parents[3] / "README.md").read_text(encoding="utf-8")


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
    message_id = enqueued(domain)
    response = resubmit.resubmit(lambda: domain.context, message_id, headers, body, actor=KEY)
    assert response.status == code
    assert text in response.body["error"]


def test_a_request_id_with_a_line_break_is_refused_before_it_reaches_a_log_line(
    domain: Domain, caplog: pytest.LogCaptureFixture
) -> None:
    """One log line per event: a request id is checked before it is logged."""
    message_id = enqueued(domain)
    body = b'{"request_id": "k\\nresubmit requested record=forged"}'

    with caplog.at_level("INFO"):
        response = resubmit.resubmit(lambda: domain.context, message_id, {}, body, actor=KEY)

    assert response.status == 400
    assert "is not accepted" in response.body["error"]
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("shared.")]
    assert not [message for message in ours if "\n" in message or "forged" in message]


def test_a_storage_failure_during_a_resubmit_is_a_503_and_its_retry_finishes_it(
    domain: Domain,
) -> None:
    domain.d365.knobs.max_enqueue_bytes = 16
    refused = domain.deliver(domain.upload("customers/USMF/retry.xml", VALID))
    assert refused is not None and refused.state is TrackingState.ENQUEUE_FAILED
    domain.d365.knobs.max_enqueue_bytes = None
    # The new version's claim (the first transaction is the request's audit row).
    domain.faults.fail("reset", "POST", "$batch", skip=1, times=50)

    def again() -> ApiResponse:
        headers = {"Idempotency-Key": "k"}
        return resubmit.resubmit(lambda: domain.context, refused.row_key, headers, b"{}", actor=KEY)

    failed = again()
    domain.faults.clear()
    done = again()

    assert failed.status == 503
    assert "send it again with the same request id" in failed.body["error"]
    assert done.status == 200, done.body
    assert done.body["resubmitted"]["resubmit_of"] == refused.row_key
    assert domain.enqueues() == 1


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [
        *HOSTILE_BODIES,
        (b'["confirm"]', 400, "the body is not a JSON object: it is an array; expected e.g. {"),
        (b'{"confirm": "true"}', 400, "confirm in the body is not true or false; expected e.g."),
        (b'{"request_id": 7}', 400, "request_id in the body is not a string; expected e.g. {"),
    ],
)
def test_a_hostile_resubmit_body_is_refused_with_what_is_wrong_not_a_500(
    domain: Domain, body: bytes, code: int, text: str
) -> None:
    message_id = enqueued(domain)
    headers = {"Idempotency-Key": "k"}

    response = resubmit.resubmit(lambda: domain.context, message_id, headers, body, actor=KEY)

    assert (response.status, response.body["error"][: len(text)]) == (code, text)
    assert f'| {code} "{response.body["error"]}" |' in README  # its row, word for word


def test_a_storage_failure_reading_the_record_to_resubmit_is_a_503_not_a_500(
    domain: Domain,
) -> None:
    message_id = enqueued(domain)
    domain.faults.fail("reset", "GET", "PartitionKey", times=50)

    response = resubmit.resubmit(
        lambda: domain.context, message_id, {"Idempotency-Key": "k"}, b"", actor=KEY
    )

    domain.faults.clear()
    assert response.status == 503
    assert response.body["error"].startswith("storage failed or changed while answering")
