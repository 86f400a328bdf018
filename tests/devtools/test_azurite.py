from pathlib import Path
from types import SimpleNamespace

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from devtools import azurite as azurite_module
from devtools.azurite import Azurite, azurite_executable


def test_blob_and_table_round_trip(azurite: Azurite, unique_name: str) -> None:
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = blobs.create_container(unique_name)
    container.upload_blob("a/b.txt", b"hello")
    assert container.download_blob("a/b.txt").readall() == b"hello"

    tables = TableServiceClient.from_connection_string(azurite.connection_string)
    table = tables.create_table(unique_name)
    table.create_entity({"PartitionKey": "p", "RowKey": "r", "value": 1})
    assert table.get_entity("p", "r")["value"] == 1


def test_windows_runs_the_cmd_shim_npm_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """npm links ``azurite`` (a sh script) and ``azurite.cmd`` on Windows; only the latter runs
    there."""
    bin_dir = tmp_path / "node_modules" / ".bin"
    bin_dir.mkdir(parents=True)
    for name in ("azurite", "azurite.cmd"):
        (bin_dir / name).write_text("")
    monkeypatch.setattr(azurite_module, "_REPO_ROOT", tmp_path)
    assert azurite_executable() == str(bin_dir / "azurite")
    monkeypatch.setattr(azurite_module, "os", SimpleNamespace(name="nt"))
    assert azurite_executable() == str(bin_dir / "azurite.cmd")
