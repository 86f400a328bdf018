"""The README's code runs as shown, so the prose cannot drift from the code."""

import re
from pathlib import Path

import pytest

from devtools.d365_emulator import Emulator
from tests import fakes

README = Path(__file__).resolve().parent.parent / "README.md"
SAMPLE = README.parent / "samples" / "customers" / "USMF" / "customers-valid.xml"


def _tested_block() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- tested: .*? -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, "the README lost its tested client example"
    return match.group(1)


def test_the_client_example_runs_against_the_emulator(
    d365: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    d365.knobs.enqueued_seconds = 0
    names = {
        "tenant_id": fakes.TENANT_ID,
        "client_id": fakes.CLIENT_ID,
        "client_secret": fakes.CLIENT_SECRET,
        "authority": d365.authority_host,
        "base_url": d365.base_url,
        "activity_id": fakes.CUSTOMERS_ACTIVITY_ID,
        "path": SAMPLE,
    }
    exec(compile(_tested_block(), str(README), "exec"), names)  # noqa: S102 - our own README

    printed = capsys.readouterr().out
    message_id = next(iter(d365.messages))
    assert printed.splitlines()[0].startswith(message_id)
    assert "refused: 400" in printed
    assert d365.messages[message_id].external_id == "customers.xml"
