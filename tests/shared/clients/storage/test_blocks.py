"""The staged-block writer against Azurite: nothing visible before the commit, one commit per
blob, a blob of another message left alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient

from shared.clients.storage import MESSAGE_ID_METADATA
from shared.clients.storage.blocks import BlobTakenError, BlockWriter

BLOCK = 1024
MINE = {MESSAGE_ID_METADATA: "00000000-0000-0000-0000-0000000000e1"}


@pytest.fixture
def container(storage_connection_string: str, unique_name: str) -> Iterator[ContainerClient]:
    service = BlobServiceClient.from_connection_string(storage_connection_string)
    container = service.create_container(unique_name)
    yield container
    container.delete_container()


def test_blocks_are_invisible_until_the_commit_then_one_blob_in_order(
    container: ContainerClient,
) -> None:
    blob = container.get_blob_client("out/a.xml")
    data = bytes(range(256)) * 20  # 5,120 bytes: five blocks, the last one short

    with BlockWriter(blob, block_size=BLOCK, in_flight=2) as writer:
        for start in range(0, len(data), 700):  # writes that straddle the blocks
            writer.write(data[start : start + 700])
        with pytest.raises(ResourceNotFoundError):
            blob.get_blob_properties()
        writer.commit(MINE)

    assert writer.size == len(data)
    assert blob.download_blob().readall() == data
    assert blob.get_blob_properties().metadata == MINE
    committed, _ = blob.get_block_list("committed")
    assert [block.size for block in committed] == [BLOCK] * 5


def test_an_empty_write_commits_an_empty_blob(container: ContainerClient) -> None:
    blob = container.get_blob_client("out/empty.xml")

    with BlockWriter(blob, block_size=BLOCK, in_flight=2) as writer:
        writer.commit(MINE)

    assert blob.download_blob().readall() == b""
    assert blob.get_block_list("committed")[0] == []


def test_a_blob_this_message_committed_before_is_not_committed_again(
    container: ContainerClient,
) -> None:
    blob = container.get_blob_client("out/a.xml")
    blob.upload_blob(b"first", metadata=MINE)
    etag = blob.get_blob_properties().etag

    with BlockWriter(blob, block_size=BLOCK, in_flight=2) as writer:
        writer.write(b"second")
        writer.commit(MINE)

    assert blob.get_blob_properties().etag == etag
    assert blob.download_blob().readall() == b"first"


def test_a_blob_of_another_message_is_left_alone_naming_it(container: ContainerClient) -> None:
    blob = container.get_blob_client("out/a.xml")
    blob.upload_blob(b"theirs", metadata={MESSAGE_ID_METADATA: "someone-else"})

    with BlockWriter(blob, block_size=BLOCK, in_flight=2) as writer:
        writer.write(b"mine")
        with pytest.raises(BlobTakenError) as raised:
            writer.commit(MINE)

    assert str(raised.value) == (
        f"the export blob 'out/a.xml' in container {container.container_name!r} already exists "
        "and was not written for this message (its d365_message_id is 'someone-else'); it was "
        "left as it is: move or delete it"
    )
    assert blob.download_blob().readall() == b"theirs"
