"""The x-ms-dyn-externalidentifier header: exact and reversible, and what the emulator (F&O)
receives and shows."""

from __future__ import annotations

import time

import pytest

from devtools.d365_emulator import Emulator
from shared.clients.d365 import (
    D365Client,
    D365ConnectionError,
    D365ServerError,
    external_id_from_header,
    external_id_header,
)
from tests import fakes
from tests.shared.clients.d365.support import ClientFactory, received

NAMES = [
    "customers 01.xml",
    "a x%20y.xml",
    "\u00fc/\u00df.xml",
    "%%",
    "100%.csv",
    "%25",
    "%zz%",
    "\U0001f4e6 delivery \U0001f69a.csv",
    "\u65e5\u672c\u8a9e/\u30c7\u30fc\u30bf.csv",
    "Cafe\u0301.csv",  # combining accent: kept as sent, not normalised
    " leading and trailing ",
    "   ",
    "tab\there\nnewline\r.xml",
    "del\x7f.xml",
    "a+b=c&d?e#f;g,h'i\"j<k>l\\m.xml",
    "path/with/many/segments/file.name.with.dots.zip",
]


@pytest.mark.parametrize("name", NAMES)
def test_header_is_printable_ascii_and_decodes_to_the_very_name(name: str) -> None:
    header = external_id_header(name)
    assert header.isascii()
    assert header.isprintable()
    assert header == header.strip()
    assert external_id_from_header(header) == name


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("customers 01.xml", "customers 01.xml"),
        ("a x%20y.xml", "a x%2520y.xml"),
        ("\u00fc/\u00df.xml", "%C3%BC/%C3%9F.xml"),
        ("%%", "%25%25"),
        ("100%.csv", "100%25.csv"),
        ("\U0001f4e6.csv", "%F0%9F%93%A6.csv"),
        (" a b ", "%20a b%20"),
        ("tab\t.xml", "tab%09.xml"),
        ("a+b=c&d?e#f.xml", "a+b=c&d?e#f.xml"),
    ],
)
def test_header_values(name: str, header: str) -> None:
    assert external_id_header(name) == header


def test_decoding_keeps_a_stray_percent_and_refuses_bytes_that_are_not_utf8() -> None:
    assert external_id_from_header("100%.csv") == "100%.csv"
    assert external_id_from_header("XX.xlsx") == "XX.xlsx"
    with pytest.raises(ValueError, match=r"^external identifier '%FF\.csv' does not decode: its "):
        external_id_from_header("%FF.csv")


def test_a_name_with_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(ValueError, match=r"is not valid Unicode text \(it holds a lone surrogate"):
        external_id_header("bad\udcff.xml")
    with pytest.raises(TypeError, match=r"^external id must be a str, not bytes$"):
        external_id_header(b"name.xml")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", NAMES)
def test_emulator_receives_and_keeps_the_header_value(
    client: D365Client, d365: Emulator, name: str
) -> None:
    result = client.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"PK package", external_id=name)

    [request] = received(d365, "enqueue")
    assert request.headers["x-ms-dyn-externalidentifier"] == external_id_header(name)
    shown = d365.messages[result.message_id].external_id
    assert shown == external_id_header(name)
    assert external_id_from_header(shown or "") == name


def test_outcome_unknown_error_names_the_identifier_f_and_o_shows(
    make_client: ClientFactory, d365: Emulator
) -> None:
    client = make_client(read_timeout=0.2)
    d365.knobs.latency_ms = 400
    with pytest.raises(D365ConnectionError) as caught:
        client.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"slow", external_id="a x%20y.xml")

    assert caught.value.sent_body is True
    text = str(caught.value)
    assert "; activity 00000000-0000-0000-0000-00000000a003, external id a x%2520y.xml)" in text
    assert (
        "so F&O may have taken it; it was not re-sent. Look for the message (external "
        "identifier a x%2520y.xml) in the job's message list before sending it again."
    ) in text
    # F&O finishes the request after the client gave up; wait so the next test starts clean.
    deadline = time.monotonic() + 5
    while not d365.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [m.external_id for m in d365.messages.values()] == ["a x%2520y.xml"]


def test_server_error_on_enqueue_names_the_identifier_too(
    client: D365Client, d365: Emulator
) -> None:
    d365.knobs.error_status = 500
    d365.knobs.error_burst = 1
    with pytest.raises(D365ServerError) as caught:
        client.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"pkg", external_id="Kunden \u00fc.zip")
    assert (
        "so it was not re-sent. Look for the message (external identifier Kunden %C3%BC.zip) in "
        "the job's message list before sending it again."
    ) in str(caught.value)
