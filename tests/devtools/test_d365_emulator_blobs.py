"""The emulator's SAS blob endpoint (devtools/d365_emulator/_blobs.py): Azure's Put Blob and
Put Block limits of the SAS version it issues, block ids and block lists, over HTTPS."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import requests

from devtools.d365_emulator import Emulator
from devtools.d365_emulator._blobs import put_blob_limit, put_block_limit

MIB = 1024 * 1024


class _Zeros:
    """`size` zero bytes sent with a Content-Length, 1 MiB at a time (never held whole)."""

    def __init__(self, size: int) -> None:
        self._size = size

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        chunk = bytes(MIB)
        left = self._size
        while left:
            yield chunk[: min(MIB, left)]
            left -= min(MIB, left)


def _block(url: str, identifier: str, data: object) -> requests.Response:
    blockid = base64.b64encode(identifier.encode()).decode()
    return requests.put(url, params={"comp": "block", "blockid": blockid}, data=data, timeout=60)


def _commit(url: str, *identifiers: str) -> requests.Response:
    latest = "".join(
        f"<Latest>{base64.b64encode(i.encode()).decode()}</Latest>" for i in identifiers
    )
    body = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{latest}</BlockList>'
    return requests.put(url, params={"comp": "blocklist"}, data=body.encode(), timeout=60)


@pytest.mark.parametrize(
    ("version", "blob", "block"),
    [
        ("2015-12-11", 64 * MIB, 4 * MIB),
        ("2016-05-31", 256 * MIB, 100 * MIB),
        ("2019-07-07", 256 * MIB, 100 * MIB),
        ("2019-12-12", 5000 * MIB, 4000 * MIB),
        ("2020-10-02", 5000 * MIB, 4000 * MIB),
    ],
)
def test_limits_follow_azures_versions(version: str, blob: int, block: int) -> None:
    assert (put_blob_limit(version), put_block_limit(version)) == (blob, block)


def test_an_old_versions_put_blob_over_64_mib_is_refused(d365: Emulator) -> None:
    d365.knobs.sas_version = "2015-12-11"
    url = d365.blobs.write_url("big.zip")

    response = requests.put(
        url, data=_Zeros(64 * MIB + 1), headers={"x-ms-blob-type": "BlockBlob"}, timeout=60
    )

    assert response.status_code == 413
    assert response.headers["x-ms-error-code"] == "RequestBodyTooLarge"
    assert requests.get(url, timeout=30).status_code == 404


def test_an_old_versions_block_is_at_most_4_mib(d365: Emulator) -> None:
    d365.knobs.sas_version = "2015-12-11"
    url = d365.blobs.write_url("blocks.zip")

    assert _block(url, "000000", _Zeros(4 * MIB + 1)).status_code == 413
    assert _block(url, "000000", _Zeros(4 * MIB)).status_code == 201
    assert _commit(url, "000000").status_code == 201
    assert len(requests.get(url, timeout=30).content) == 4 * MIB


def test_committed_blocks_are_the_blob_in_list_order(d365: Emulator) -> None:
    url = d365.blobs.write_url("ordered.zip")
    for identifier, data in (("b", b"second"), ("a", b"first "), ("c", b"unused")):
        assert _block(url, identifier, data).status_code == 201

    assert _commit(url, "a", "b").status_code == 201

    assert requests.get(url, timeout=30).content == b"first second"


@pytest.mark.parametrize(
    ("blockid", "code"),
    [
        ("not base64!", "InvalidQueryParameterValue"),
        (base64.b64encode(bytes(65)).decode(), "InvalidQueryParameterValue"),
        ("", "InvalidQueryParameterValue"),
    ],
)
def test_bad_block_ids_are_refused(d365: Emulator, blockid: str, code: str) -> None:
    url = d365.blobs.write_url("ids.zip")
    response = requests.put(
        url, params={"comp": "block", "blockid": blockid}, data=b"x", timeout=30
    )
    assert (response.status_code, response.headers["x-ms-error-code"]) == (400, code)


def test_block_ids_of_one_blob_have_one_length(d365: Emulator) -> None:
    url = d365.blobs.write_url("lengths.zip")
    assert _block(url, "01", b"x").status_code == 201
    response = _block(url, "00002", b"y")
    assert response.status_code == 400
    assert "same length" in response.text


def test_block_lists_naming_unknown_or_too_many_blocks_are_refused(d365: Emulator) -> None:
    url = d365.blobs.write_url("lists.zip")
    assert _block(url, "a", b"x").status_code == 201

    unknown = _commit(url, "a", "b")
    too_long = _commit(url, *(["a"] * 50_001))

    assert (unknown.status_code, unknown.headers["x-ms-error-code"]) == (400, "InvalidBlockList")
    assert (too_long.status_code, too_long.headers["x-ms-error-code"]) == (
        400,
        "BlockListTooLong",
    )
    assert requests.get(url, timeout=30).status_code == 404


def test_a_block_without_the_signature_is_refused(d365: Emulator) -> None:
    url = d365.blobs.write_url("unsigned.zip").split("&sig=", 1)[0]
    response = _block(url, "a", b"x")
    assert (response.status_code, response.headers["x-ms-error-code"]) == (
        403,
        "AuthenticationFailed",
    )
