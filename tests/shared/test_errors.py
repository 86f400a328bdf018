"""Which errors' text may be shown: the app's own and its F&O client's, others by type only."""

from __future__ import annotations

from shared.clients.d365 import D365NotFoundError
from shared.clients.storage.blocks import BlobTakenError
from shared.errors import AppError, is_safe, safe_text


def test_the_f_and_o_clients_errors_are_shown_with_their_text_without_being_app_errors() -> None:
    refused = D365NotFoundError(
        "enqueue failed: HTTP 404 Not Found.", status_code=404, url="https://fno/api"
    )
    assert not isinstance(refused, AppError)
    assert is_safe(refused)
    assert safe_text(refused) == "D365NotFoundError: enqueue failed: HTTP 404 Not Found."


def test_our_errors_show_their_text_any_other_only_its_type() -> None:
    assert safe_text(AppError("the route is unknown")) == "AppError: the route is unknown"
    assert safe_text(RuntimeError("https://x/?sig=secret")) == "RuntimeError"
    assert not is_safe(RuntimeError("https://x/?sig=secret"))


def test_the_block_writers_refusal_of_a_taken_blob_is_shown_with_its_text() -> None:
    taken = BlobTakenError("the export blob 'a.csv' exists for another message")
    assert not isinstance(taken, AppError)
    assert is_safe(taken)
    assert safe_text(taken) == "BlobTakenError: the export blob 'a.csv' exists for another message"
