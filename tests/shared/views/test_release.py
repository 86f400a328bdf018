"""The release view: a hostile body is a 400 or 413 that says why, before any read, never a
500 (issue 17's body cap holds for the route issue 22 added)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.tracking import Actor
from shared.views import release
from tests.shared.conftest import Domain
from tests.shared.views.support import HOSTILE_BODIES, enqueued

README = (Path(__file__).parents[3] / "README.md").read_text(encoding="utf-8")
EXAMPLE = '; expected e.g. {"request_id": "<a new UUID>"}'


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [
        *HOSTILE_BODIES,
        (b'{"request_id": 7}', 400, "request_id in the body is not a string"),
    ],
)
def test_a_hostile_release_body_is_refused_with_what_is_wrong_not_a_500(
    domain: Domain, body: bytes, code: int, text: str
) -> None:
    message_id = enqueued(domain)
    before = len(domain.faults.calls)

    response = release.release(
        lambda: domain.context, message_id, {}, body, actor=Actor.function_key()
    )

    assert (response.status, response.body["error"][: len(text)]) == (code, text)
    assert response.body["error"].endswith(EXAMPLE)
    assert domain.faults.calls[before:] == []  # refused before any read
    if code == 413:
        assert f'| {code} "{response.body["error"]}" |' in README  # its row, word for word
