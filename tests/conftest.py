"""Session fixtures that start the real parts on loopback: Azurite and the D365 emulator."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devtools.azurite import Azurite


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite for the whole session, on free loopback ports, always stopped."""
    with Azurite(location=tmp_path_factory.mktemp("azurite")) as instance:
        yield instance


@pytest.fixture
def storage_connection_string(azurite: Azurite) -> str:
    """Connection string of the session's Azurite."""
    return azurite.connection_string


@pytest.fixture
def unique_name() -> str:
    """A fresh lower-case name, valid as a container or (prefixed) table name."""
    return "t" + uuid.uuid4().hex[:20]
