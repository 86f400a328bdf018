from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from devtools.azurite import Azurite


def test_blob_and_table_round_trip(azurite: Azurite, unique_name: str) -> None:
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = blobs.create_container(unique_name)
    container.upload_blob("a/b.txt", b"hello")
    assert container.download_blob("a/b.txt").readall() == b"hello"

    tables = TableServiceClient.from_connection_string(azurite.connection_string)
    table = tables.create_table(unique_name)
    table.create_entity({"PartitionKey": "p", "RowKey": "r", "value": 1})
    assert table.get_entity("p", "r")["value"] == 1
