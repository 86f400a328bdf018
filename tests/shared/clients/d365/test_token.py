"""The F&O token held by the client: asked of the credential once, again only when due, and
again after F&O refused it with a 401. Real tokens from the emulator's tenant throughout."""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.identity import ClientSecretCredential
from cryptography.hazmat.primitives.asymmetric import rsa

from devtools.d365_emulator import Emulator
from shared.clients.d365 import D365AuthenticationError
from tests import fakes
from tests.shared.clients.d365.support import ClientFactory, received

MESSAGE = "11111111-2222-3333-4444-555555555555"
CALLS = 4


class CountingCredential:
    """The session's real ClientSecretCredential, counting the times it is asked."""

    def __init__(self, inner: ClientSecretCredential) -> None:
        self.inner = inner
        self.asked = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.asked += 1
        return self.inner.get_token(*scopes, **kwargs)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        self.asked += 1
        return self.inner.get_token_info(*scopes, options=options)


class IssuingCredential:
    """Tokens the emulator's tenant signs (as its token endpoint would), with a chosen
    ``refresh_on``; `foreign_first` makes the first one signed by a key F&O does not trust."""

    def __init__(
        self, emulator: Emulator, *, refresh_in: float | None = None, foreign_first: bool = False
    ) -> None:
        self._emulator = emulator
        self._refresh_in = refresh_in
        self._foreign = foreign_first
        self.asked = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        info = self.get_token_info(*scopes)
        return AccessToken(info.token, info.expires_on)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        self.asked += 1
        key = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if self._foreign
            else None
        )
        self._foreign = False
        now = int(time.time())
        token = self._emulator.issue_token(fakes.CLIENT_ID, lifetime_seconds=3600, signing_key=key)
        refresh_on = None if self._refresh_in is None else int(now + self._refresh_in)
        return AccessTokenInfo(token, now + 3600, refresh_on=refresh_on)


class GetTokenOnly:
    """A credential of the older protocol: `get_token` only."""

    def __init__(self, inner: ClientSecretCredential) -> None:
        self.inner = inner
        self.asked = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.asked += 1
        return self.inner.get_token(*scopes, **kwargs)


def _poll(make_client: ClientFactory, credential: object, calls: int = CALLS) -> None:
    client = make_client(credential=credential)
    for _ in range(calls):
        client.get_message_status(MESSAGE)


def test_the_token_is_asked_for_once_for_many_calls(
    make_client: ClientFactory, d365: Emulator, d365_credential: ClientSecretCredential
) -> None:
    credential = CountingCredential(d365_credential)
    _poll(make_client, credential)
    assert credential.asked == 1
    assert len(received(d365, "GetMessageStatus")) == CALLS


def test_a_credential_with_only_get_token_is_held_too(
    make_client: ClientFactory, d365_credential: ClientSecretCredential
) -> None:
    credential = GetTokenOnly(d365_credential)
    _poll(make_client, credential)
    assert credential.asked == 1


def test_a_token_expiring_within_five_minutes_is_asked_for_on_each_call(
    make_client: ClientFactory, d365: Emulator, d365_credential: ClientSecretCredential
) -> None:
    d365.knobs.token_lifetime_seconds = 240
    credential = CountingCredential(d365_credential)
    _poll(make_client, credential)
    assert credential.asked == CALLS


@pytest.mark.parametrize(("refresh_in", "asked"), [(-1, CALLS), (600, 1)])
def test_a_token_past_its_refresh_on_is_asked_for_again(
    make_client: ClientFactory, d365: Emulator, refresh_in: float, asked: int
) -> None:
    credential = IssuingCredential(d365, refresh_in=refresh_in)
    _poll(make_client, credential)
    assert credential.asked == asked


def test_a_401_drops_the_held_token_so_the_next_call_asks_again(
    make_client: ClientFactory, d365: Emulator
) -> None:
    credential = IssuingCredential(d365, foreign_first=True)
    client = make_client(credential=credential)

    with pytest.raises(D365AuthenticationError, match="Authorization has been denied"):
        client.get_message_status(MESSAGE)
    status = client.get_message_status(MESSAGE)
    client.get_message_status(MESSAGE)

    assert status.raw == "Enqueued"
    assert credential.asked == 2
    assert [r.status for r in received(d365, "GetMessageStatus")] == [401, 200, 200]
