"""INBOUND_CONTAINER is real: the trigger path ``%INBOUND_CONTAINER%/{name}`` follows it."""

from __future__ import annotations

import pytest

from devtools.local_host import LocalHost, MissingAppSettingError
from tests.e2e.conftest import INBOUND, App


def test_a_custom_inbound_container_takes_a_file_to_its_final_state(
    app_factory, unique_name: str
) -> None:
    custom = f"{unique_name}-drop"
    app: App = app_factory(INBOUND_CONTAINER=custom)
    assert app.inbound.container_name == custom

    blob = app.upload_sample("customers/USMF/customers-valid.xml")
    record = app.run_until_terminal([blob])[blob]

    assert record["state"] == "Processed"
    assert record["history"][0]["state"] == "Received"
    assert record["archived_to"].endswith(f"Processed/{blob}")
    assert not app.inbound.get_blob_client(blob).exists()  # moved out of the custom container

    health = app.get("health")
    assert health.status_code == 200, health.text
    settings = health.json()["checks"]["settings"]
    assert settings["summary"]["inbound_container"] == custom
    assert settings["problems"] == []


def test_the_default_container_is_not_watched_when_another_is_set(
    app_factory, unique_name: str
) -> None:
    app: App = app_factory(INBOUND_CONTAINER=f"{unique_name}-drop")
    default = app.blobs.get_container_client(INBOUND)
    if not default.exists():
        default.create_container()
    default.upload_blob(f"{app.folder}/customers/USMF/elsewhere.xml", b"<Document/>")

    assert app.deliver() == 0
    assert app.get("messages", blob=f"{app.folder}/customers/USMF/elsewhere.xml").status_code == 404


def test_the_local_host_names_a_missing_inbound_container_setting(
    monkeypatch: pytest.MonkeyPatch, azurite
) -> None:
    from function_app import app as function_app

    monkeypatch.delenv("INBOUND_CONTAINER", raising=False)
    monkeypatch.setenv("POLL_SCHEDULE", "0 */1 * * * *")

    with pytest.raises(MissingAppSettingError) as caught:
        LocalHost(function_app, storage_connection_string=azurite.connection_string, http_port=0)

    assert str(caught.value) == (
        "app setting 'INBOUND_CONTAINER' is not set; function 'enqueue_blob' needs it for its "
        "blob path '%INBOUND_CONTAINER%/{name}': set INBOUND_CONTAINER in local.settings.json "
        "(Values) or in the environment"
    )
