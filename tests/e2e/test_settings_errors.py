"""Bad settings: a clear error naming the setting, from every function, with nothing lost."""

from __future__ import annotations

import pytest

from enqueue_blob import enqueue_blob
from shared.config import SettingsError
from tests.e2e.conftest import App
from tests.e2e.test_enqueue import VALID

BAD_SETTINGS = [
    ({"D365_ROUTES": "[{"}, "D365_ROUTES"),
    ({"D365_ROUTES": '[{"name": "x", "prefix": "x/", "activity_id": "nope"}]'}, "activity_id"),
    ({"D365_BASE_URL": "contoso.operations.dynamics.com"}, "D365_BASE_URL"),
    ({"POLL_SCHEDULE": "every minute"}, "POLL_SCHEDULE"),
    ({"MAX_PENDING_AGE": "forever"}, "MAX_PENDING_AGE"),
    ({"ARCHIVE_MODE": "delete"}, "ARCHIVE_MODE"),
    ({"STATUS_TABLE": "no-dashes"}, "STATUS_TABLE"),
    ({"IntegrationStorage": "not a connection string"}, "IntegrationStorage"),
]


@pytest.mark.parametrize(("overrides", "named"), BAD_SETTINGS)
def test_bad_setting_is_named_by_health_and_the_api(
    app_factory, overrides: dict[str, str], named: str
) -> None:
    app: App = app_factory(**overrides)

    health = app.get("health")
    listing = app.get("messages")

    assert health.status_code == 503
    problems = health.json()["checks"]["settings"]["problems"]
    assert any(named in problem for problem in problems), problems
    assert listing.status_code == 503
    assert named in listing.json()["error"]


def test_bad_setting_fails_the_blob_function_and_the_blob_stays(app_factory) -> None:
    app: App = app_factory(D365_ROUTES="[{")
    blob = app.upload("customers/USMF/kept.xml", VALID)

    with pytest.raises(SettingsError, match="D365_ROUTES"):
        enqueue_blob(app.inbound.get_blob_client(blob))

    assert app.inbound.get_blob_client(blob).download_blob().readall() == VALID
