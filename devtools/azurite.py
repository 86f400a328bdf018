"""Start and stop Azurite (the Azure Storage emulator) from this repository's node_modules."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from devtools.lifecycle import Service

_LOGGER = logging.getLogger(__name__)
_REPO_ROOT = Path(__file__).resolve().parent.parent
# Azurite's well-known development account; public by design, not a secret.
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def azurite_executable() -> str:
    """The Azurite binary installed by `npm ci` (package.json pins 3.35.0); on Windows npm
    links it as ``azurite.cmd``, which subprocess runs only when named in full."""
    name = "azurite.cmd" if os.name == "nt" else "azurite"
    local = _REPO_ROOT / "node_modules" / ".bin" / name
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    raise FileNotFoundError(
        f"Azurite is not installed: expected {local}. Run `npm ci` in {_REPO_ROOT} "
        "(or `make install`), which installs the version pinned in package.json."
    )


def connection_string(blob_port: int, queue_port: int, table_port: int) -> str:
    """The full Azurite connection string for the given ports."""
    base = "http://127.0.0.1"
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={base}:{blob_port}/{ACCOUNT_NAME};"
        f"QueueEndpoint={base}:{queue_port}/{ACCOUNT_NAME};"
        f"TableEndpoint={base}:{table_port}/{ACCOUNT_NAME};"
    )


def _wait_listening(port: int, deadline: float) -> None:
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"Azurite did not listen on 127.0.0.1:{port} in time")
        time.sleep(0.1)


class Azurite(Service):
    """An Azurite process on loopback; use as a context manager.

    :param location: folder for Azurite's data; in memory when None.
    :keyword blob_port/queue_port/table_port: fixed ports; free ones are picked when 0.
    """

    def __init__(
        self,
        location: Path | None = None,
        *,
        blob_port: int = 0,
        queue_port: int = 0,
        table_port: int = 0,
        startup_timeout: float = 30.0,
    ) -> None:
        self.location = location
        self.blob_port = blob_port or free_port()
        self.queue_port = queue_port or free_port()
        self.table_port = table_port or free_port()
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        """Connection string for this instance."""
        return connection_string(self.blob_port, self.queue_port, self.table_port)

    def start(self) -> None:
        """Start Azurite and wait until all three services listen."""
        storage = ["--location", str(self.location)] if self.location else ["--inMemoryPersistence"]
        command = [
            azurite_executable(),
            "--silent",
            *storage,
            "--blobHost", "127.0.0.1", "--blobPort", str(self.blob_port),
            "--queueHost", "127.0.0.1", "--queuePort", str(self.queue_port),
            "--tableHost", "127.0.0.1", "--tablePort", str(self.table_port),
            "--skipApiVersionCheck", "--loose", "--disableTelemetry",
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + self._startup_timeout
        try:
            for port in (self.blob_port, self.queue_port, self.table_port):
                _wait_listening(port, deadline)
        except TimeoutError:
            self.stop()
            raise
        _LOGGER.info(
            "azurite started blob=%s queue=%s table=%s",
            self.blob_port,
            self.queue_port,
            self.table_port,
        )

    def stop(self) -> None:
        """Stop the process (idempotent)."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None
