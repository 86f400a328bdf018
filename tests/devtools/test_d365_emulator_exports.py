"""The emulator's export jobs: realistic files, a download that breaks part way, the CLI."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests
from azure.identity import ClientSecretCredential

from devtools.d365_emulator import Emulator
from devtools.d365_emulator._exports import customers_export, export_package
from tests import fakes


@pytest.fixture
def auth(d365: Emulator, d365_credential: ClientSecretCredential) -> dict[str, str]:
    """The Authorization header with a token from the real credential."""
    return {"Authorization": f"Bearer {d365_credential.get_token(d365.scope).token}"}


def _dequeue(d365: Emulator, auth: dict[str, str]) -> dict:
    url = f"{d365.base_url}/api/connector/dequeue/{fakes.EXPORT_ACTIVITY_ID}"
    response = requests.get(url, headers=auth, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_customers_export_is_dmf_xml_or_csv() -> None:
    xml = customers_export("USMF", 2).decode()
    assert xml.startswith('<?xml version="1.0" encoding="utf-8"?>')
    assert xml.count("<CUSTCUSTOMERV3ENTITY>") == 2
    assert "&amp; Co" in xml
    csv = customers_export("DEMF", 3, file_format="csv").decode("utf-8-sig").splitlines()
    assert csv[0].startswith("CUSTOMERACCOUNT,CUSTOMERGROUPID,SALESCURRENCYCODE")
    assert len(csv) == 4
    assert csv[1].startswith("DE-1000,")
    with pytest.raises(ValueError, match="expected xml or csv"):
        customers_export(file_format="json")


def test_an_export_package_holds_manifest_header_and_the_entity_file() -> None:
    with zipfile.ZipFile(io.BytesIO(export_package("USMF", 2))) as archive:
        assert archive.namelist() == ["Manifest.xml", "PackageHeader.xml", "Customers V3.xml"]
        assert b"<InputFilePath>Customers V3.xml</InputFilePath>" in archive.read("Manifest.xml")
        assert archive.read("Customers V3.xml") == customers_export("USMF", 2)


def test_queued_customers_exports_download_as_produced(
    d365: Emulator, auth: dict[str, str]
) -> None:
    d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID, file_format="package")
    message = _dequeue(d365, auth)
    download = requests.get(message["DownloadLocation"], headers=auth, timeout=10)
    assert download.content == export_package()


def test_a_download_breaks_part_way_with_the_knob(d365: Emulator, auth: dict[str, str]) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    d365.add_export(fakes.EXPORT_ACTIVITY_ID, data)
    d365.knobs.download_break_burst = 1
    d365.knobs.download_break_after_bytes = 300_000
    location = _dequeue(d365, auth)["DownloadLocation"]

    received = bytearray()
    with (
        pytest.raises(requests.exceptions.ChunkedEncodingError),
        requests.get(location, headers=auth, stream=True, timeout=10) as response,
    ):
        assert response.headers["Content-Length"] == str(len(data))
        for chunk in response.iter_content(65536):
            received += chunk
    # requests drops the last, incomplete read of the broken stream.
    assert 0 < len(received) <= 300_000

    assert requests.get(location, headers=auth, timeout=10).content == data


def test_a_lost_export_file_answers_404_while_the_message_is_still_offered(
    d365: Emulator, auth: dict[str, str]
) -> None:
    message_id = d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    d365.lose_export_file(message_id)
    message = _dequeue(d365, auth)
    assert message["CorrelationId"] == message_id

    download = requests.get(message["DownloadLocation"], headers=auth, timeout=10)

    assert download.status_code == 404
    assert f"No file was found for '{message_id}'." in download.text
    d365.clock.advance(1801)
    assert _dequeue(d365, auth)["CorrelationId"] == message_id


def test_the_cli_queues_exports(tmp_path: Path) -> None:
    payload = tmp_path / "export.xml"
    payload.write_bytes(customers_export())
    log = tmp_path / "emulator.log"
    command = [
        sys.executable, "-m", "devtools.d365_emulator", "--port", "0", "--no-tls",
        "--export", f"{fakes.EXPORT_ACTIVITY_ID}={payload}",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "export " not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert f"queued on job {fakes.EXPORT_ACTIVITY_ID}" in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_downloads_follow_the_link_speed_knob(d365: Emulator, auth: dict[str, str]) -> None:
    data = bytes(2 * 1024 * 1024)
    d365.add_export(fakes.EXPORT_ACTIVITY_ID, data)
    d365.knobs.download_mib_per_s = 10
    location = _dequeue(d365, auth)["DownloadLocation"]

    started = time.monotonic()
    assert requests.get(location, headers=auth, timeout=10).content == data
    assert time.monotonic() - started >= 0.18
