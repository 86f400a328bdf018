"""No secret, token or SAS signature in any log line or HTTP response of a whole run."""

from __future__ import annotations

import logging

import pytest
import requests

from enqueue_blob import enqueue_blob
from shared.context import get_context
from tests import fakes
from tests.e2e.conftest import App
from tests.e2e.test_enqueue import VALID


def test_a_whole_run_never_shows_the_secret_or_a_token(
    app_factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app: App = app_factory()
    blobs = [
        app.upload_sample("customers/USMF/customers-valid.xml"),
        app.upload_sample("customers/USMF/customers-with-errors.xml"),
        app.upload("unrouted/x.xml", VALID),
    ]
    app.d365.knobs.throttle_burst = 1
    records = app.run_until_terminal(blobs)
    responses: list[requests.Response] = [
        app.get("health"),
        app.get("messages"),
        *(app.get("messages", blob=b) for b in blobs),
        *(app.get(f"messages/{r['message_id']}") for r in records.values() if r["message_id"]),
    ]
    context = get_context()
    token = context.credential.get_token(context.settings.d365.scope).token

    # A wrong secret: the failure is reported, the secret and the F&O token are not.
    wrong = app_factory(D365_CLIENT_SECRET="another-fake-secret-value")
    blob = wrong.upload("customers/USMF/after.xml", VALID)
    enqueue_blob(wrong.inbound.get_blob_client(blob))
    not_taken = wrong.record(blob)
    assert not_taken["state"] == "Received"
    assert "token" in not_taken["last_error"]
    responses += [wrong.get("health"), wrong.get("messages", blob=blob)]

    texts = [r.text for r in responses]
    texts += [record.getMessage() for record in caplog.records]
    texts += [caplog.text]
    for text in texts:
        assert fakes.CLIENT_SECRET not in text
        assert "another-fake-secret-value" not in text
        assert token not in text
        assert "sig=" not in text
    assert any("enqueued" in record.getMessage() for record in caplog.records)
