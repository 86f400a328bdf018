"""GET /api/health makes one harmless authorized F&O call, so a green smoke test means F&O
accepts the app, not only that Entra issues it a token (docs/deploy.md, "Smoke test")."""

from __future__ import annotations

import json

import pytest

from shared.flows.access import PROBE_MESSAGE_ID
from tests.e2e.conftest import App


def _probes(app: App) -> list:
    return [request for request in app.d365.requests if request.operation == "GetMessageStatus"]


def test_health_is_green_only_after_f_and_o_answered_an_authorized_call(app: App) -> None:
    response = app.get("health")

    assert response.status_code == 200, response.text
    assert response.json()["checks"]["d365_access"] == {"ok": True, "status": 200}
    (probe,) = _probes(app)
    assert json.loads(probe.body) == {"messageId": PROBE_MESSAGE_ID}
    assert probe.status == 200


@pytest.mark.parametrize("status", [401, 403])
def test_health_is_red_when_f_and_o_refuses_the_app(app: App, status: int) -> None:
    # What F&O answers an app missing from "Microsoft Entra applications": the token is fine.
    app.d365.knobs.operations = frozenset({"GetMessageStatus"})
    app.d365.knobs.error_status = status
    app.d365.knobs.error_burst = 1

    response = app.get("health")

    assert response.status_code == 503
    body = response.json()
    assert body["healthy"] is False
    assert body["checks"]["d365_token"] == {"ok": True}
    access = body["checks"]["d365_access"]
    assert (access["ok"], access["status"]) == (False, status)
    assert "Microsoft Entra applications" in access["fix"]
    # One attempt: a health check answers at once.
    assert len(_probes(app)) == 1


@pytest.mark.parametrize("status", [500, 503, 408, 429])
def test_health_is_red_when_f_and_o_fails_or_throttles_the_probe(app: App, status: int) -> None:
    """A 5xx, 408 or 429 was taken for "F&O ran the call and refused only the id": green."""
    app.d365.knobs.operations = frozenset({"GetMessageStatus"})
    app.d365.knobs.error_status = status
    app.d365.knobs.error_burst = 1

    response = app.get("health")

    assert response.status_code == 503
    access = response.json()["checks"]["d365_access"]
    assert (access["ok"], access["status"]) == (False, status)
    assert access["error"].startswith("F&O did not answer the probe: ")
    assert f"HTTP {status} " in access["error"]
    assert len(_probes(app)) == 1


def test_an_unknown_id_refused_by_f_and_o_still_shows_the_app_accepted(app: App) -> None:
    app.d365.knobs.unknown_ids_not_found = True

    response = app.get("health")

    assert response.status_code == 200, response.text
    assert response.json()["checks"]["d365_access"] == {"ok": True, "status": 404}


def test_no_f_and_o_call_without_a_token(app_factory) -> None:
    app = app_factory(D365_CLIENT_SECRET="wrong-fake-secret")

    body = app.get("health").json()

    assert body["checks"]["d365_token"]["ok"] is False
    assert "d365_access" not in body["checks"]
    assert _probes(app) == []
