"""The guard: a view whose app cannot start answers 503 with the problem, never a 500."""

from __future__ import annotations

from shared.config import SettingsError
from shared.views import files


def test_settings_that_fail_to_load_answer_503_with_the_problems() -> None:
    def broken() -> None:
        raise SettingsError(["D365_ROUTES: is not set; expected a JSON list of routes"])

    response = files.messages(broken, None, {})
    assert response.status == 503
    assert response.body["problems"] == ["D365_ROUTES: is not set; expected a JSON list of routes"]


def test_any_other_startup_failure_is_a_503_that_shows_no_text() -> None:
    def broken() -> None:
        raise RuntimeError("AccountKey=c2VjcmV0 leaked into an SDK message")

    response = files.messages(broken, "84a383c8-336d-45e4-9933-0c3e8bfb734a", {})
    assert response.status == 503
    assert response.body["error"] == "the app could not start (RuntimeError); see /api/health"
