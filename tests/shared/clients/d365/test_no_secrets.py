"""A whole run's logs and error texts carry neither the client secret nor the access token."""

from __future__ import annotations

import io
import logging

import pytest
from azure.identity import ClientSecretCredential

from devtools.d365_emulator import Emulator
from shared.clients.d365 import D365Client, D365Error
from tests import fakes
from tests.shared.clients.d365.support import ClientFactory


def _chain(error: BaseException) -> list[str]:
    texts = []
    current: BaseException | None = error
    while current is not None:
        texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return texts


def _run_everything(client: D365Client, d365: Emulator) -> list[str]:
    """Every call, a retry of each kind and each error; returns the error texts."""
    texts: list[str] = []
    d365.knobs.throttle_burst = 1
    message_id = client.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"pkg", external_id="p.zip").message_id
    d365.knobs.error_status = 500
    d365.knobs.error_burst = 1
    client.get_message_status(message_id)
    d365.clock.advance(60)
    execution_id = client.get_execution_id(message_id)
    assert execution_id is not None
    client.get_execution_errors(execution_id)
    client.get_execution_summary_status(execution_id)
    d365.add_export(fakes.EXPORT_ACTIVITY_ID, b"export")
    message = client.dequeue(fakes.EXPORT_ACTIVITY_ID)
    assert message is not None
    client.download(message.download_location, io.BytesIO())
    client.ack(fakes.EXPORT_ACTIVITY_ID, message)
    for knob, value in (("error_burst", 1), ("drop_after_body_burst", 1), ("throttle_burst", 9)):
        setattr(d365.knobs, knob, value)
        with pytest.raises(D365Error) as caught:
            client.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"pkg")
        texts += _chain(caught.value)
        d365.reset()
    with pytest.raises(D365Error) as caught:
        client.enqueue(fakes.CUSTOMERS_ACTIVITY_ID, b"x")  # 400: entity missing
    texts += _chain(caught.value)
    return texts


def test_no_secret_or_token_in_logs_or_errors(
    make_client: ClientFactory,
    d365: Emulator,
    d365_credential: ClientSecretCredential,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client()
    texts = _run_everything(client, d365)

    wrong_secret = "wrong-but-secret-value-7"
    wrong = ClientSecretCredential(
        fakes.TENANT_ID,
        fakes.CLIENT_ID,
        wrong_secret,
        authority=d365.authority_host,
        disable_instance_discovery=True,
    )
    with wrong, pytest.raises(D365Error) as caught:
        make_client(credential=wrong).get_message_status("11111111-2222-3333-4444-555555555555")
    texts += _chain(caught.value)

    token = d365_credential.get_token(client.scope).token
    lines = [record.getMessage() for record in caplog.records]
    assert any(line.startswith("enqueued activity=") for line in lines)
    assert any(line.startswith("retrying operation=") for line in lines)
    assert len(texts) > 10
    for secret in (token, token[-40:], fakes.CLIENT_SECRET, wrong_secret):
        assert not [line for line in lines if secret in line]
        assert not [text for text in texts if secret in text]
