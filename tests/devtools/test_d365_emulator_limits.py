"""The emulator's user-based service protection limits over real HTTPS: requests at once and
per window, per user, answered 429 with F&O's texts and a Retry-After that grows while the
user keeps calling."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devtools.d365_emulator import Emulator
from tests import fakes

TIMEOUT = 10
ZERO_GUID = "00000000-0000-0000-0000-000000000000"


def _headers(d365: Emulator, client_id: str = fakes.CLIENT_ID) -> dict[str, str]:
    return {"Authorization": f"Bearer {d365.issue_token(client_id)}"}


def _status(d365: Emulator, headers: dict[str, str]) -> requests.Response:
    return requests.post(
        f"{d365.base_url}/data/DataManagementDefinitionGroups/"
        "Microsoft.Dynamics.DataEntities.GetMessageStatus",
        json={"messageId": ZERO_GUID},
        headers=headers,
        timeout=TIMEOUT,
    )


def _enqueue(d365: Emulator, headers: dict[str, str]) -> requests.Response:
    return requests.post(
        f"{d365.base_url}/api/connector/enqueue/{fakes.CUSTOMERS_ACTIVITY_ID}",
        params={"entity": fakes.CUSTOMERS_ENTITY, "company": fakes.COMPANY},
        data=b"<Document/>",
        headers=headers,
        timeout=TIMEOUT,
    )


def _text(response: requests.Response) -> str:
    body = response.json()
    return body["Message"] if "Message" in body else body["error"]["innererror"]["message"]


def test_no_limits_by_default(d365: Emulator) -> None:
    headers = _headers(d365)
    assert {_status(d365, headers).status_code for _ in range(20)} == {200}
    assert d365.limits.refusals == 0


def test_requests_past_the_concurrency_limit_get_f_and_os_429(d365: Emulator) -> None:
    d365.knobs.user_max_concurrent = 2
    d365.knobs.latency_ms = 400
    headers = _headers(d365)
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: _status(d365, headers), range(3)))
    refused = [a for a in answers if a.status_code == 429]
    assert sorted(a.status_code for a in answers) == [200, 200, 429]
    (refusal,) = refused
    assert _text(refusal) == "Number of concurrent requests exceeded the limit of 2."
    assert refusal.headers["Retry-After"] == "1"
    assert d365.limits.max_in_flight == 2
    assert d365.limits.max_offered == 3
    assert d365.limits.refusals == 1


def test_requests_past_the_window_limit_get_f_and_os_429_until_it_has_room(
    d365: Emulator,
) -> None:
    d365.knobs.user_max_requests = 3
    d365.knobs.user_window_seconds = 2
    headers = _headers(d365)
    assert [_status(d365, headers).status_code for _ in range(3)] == [200, 200, 200]
    refused = _enqueue(d365, headers)
    assert refused.status_code == 429
    assert refused.json() == {
        "Message": "Number of requests exeeded the limit of 3 over the time window of 2 seconds."
    }
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 2
    assert d365.messages == {}
    time.sleep(wait + 0.1)
    assert _status(d365, headers).status_code == 200


def test_calling_before_the_retry_after_has_passed_makes_it_grow(d365: Emulator) -> None:
    d365.knobs.user_max_requests = 1
    d365.knobs.user_window_seconds = 1
    d365.knobs.user_retry_after_max = 3
    headers = _headers(d365)
    assert _status(d365, headers).status_code == 200
    pushed = [_status(d365, headers) for _ in range(3)]
    assert [p.status_code for p in pushed] == [429, 429, 429]
    assert [p.headers["Retry-After"] for p in pushed] == ["1", "2", "3"]
    assert {_text(p) for p in pushed} == {
        "Number of requests exeeded the limit of 1 over the time window of 1 seconds."
    }
    time.sleep(3.1)
    assert _status(d365, headers).status_code == 200
    # Waited out: the growth starts again from the window's own Retry-After.
    assert _status(d365, headers).headers["Retry-After"] == "1"


def test_each_user_has_limits_of_its_own(d365: Emulator) -> None:
    d365.knobs.user_max_requests = 1
    d365.knobs.user_window_seconds = 60
    mine, other = _headers(d365), _headers(d365, fakes.OTHER_CLIENT_ID)
    assert _status(d365, mine).status_code == 200
    assert _status(d365, mine).status_code == 429
    assert _status(d365, other).status_code == 200


def test_the_token_endpoint_does_not_count(d365: Emulator) -> None:
    d365.knobs.user_max_requests = 1
    d365.knobs.user_window_seconds = 60
    for _ in range(3):
        _headers(d365)
        token = requests.post(
            f"{d365.base_url}/{d365.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": fakes.CLIENT_ID,
                "client_secret": fakes.CLIENT_SECRET,
                "scope": d365.scope,
            },
            timeout=TIMEOUT,
        )
        assert token.status_code == 200
    assert _status(d365, _headers(d365)).status_code == 200


# "e30.WzFd.c2ln": a JWT's three parts whose payload is the JSON array [1], not an object.
@pytest.mark.parametrize("value", ["Bearer not-a-jwt", "Bearer e30.WzFd.c2ln", "Basic abc", ""])
def test_a_request_without_a_readable_token_counts_as_anonymous(d365: Emulator, value: str) -> None:
    d365.knobs.user_max_requests = 1
    d365.knobs.user_window_seconds = 60
    assert _status(d365, {"Authorization": value}).status_code == 401
    assert _status(d365, {"Authorization": value}).status_code == 429
    assert _status(d365, _headers(d365)).status_code == 200


def test_without_growth_only_the_limits_refuse(d365: Emulator) -> None:
    d365.knobs.user_max_requests = 1
    d365.knobs.user_window_seconds = 1
    d365.knobs.user_retry_after_growth = False
    headers = _headers(d365)
    assert _status(d365, headers).status_code == 200
    pushed = [_status(d365, headers) for _ in range(3)]
    assert [p.headers["Retry-After"] for p in pushed] == ["1", "1", "1"]
    time.sleep(1.1)
    assert _status(d365, headers).status_code == 200
