"""The README's code runs as shown and its answers are the app's, so the prose cannot drift
from the code."""

import re
from pathlib import Path

import pytest

from devtools.d365_emulator import Emulator
from tests import fakes
from tests.shared.config.test_bad_settings import CATALOGUE

README = Path(__file__).resolve().parent.parent / "README.md"
# A row of the bad-input table whose answer names a setting, e.g. "D365_ROUTES[1].prefix: ...".
SETTING_ROW = re.compile(
    r"^\| (?P<kind>.+?) \| (?P<answer>[A-Za-z0-9_]+(\[\d+\])?[.:\w]*: .*) \|$", re.M
)
# Longer answers are shown cut to this many characters, the last one "…".
SHOWN = 198
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


def test_the_bad_setting_rows_show_the_catalogue_answers() -> None:
    """Each row of "Bad input: what you get back" answering a setting is a kind of
    tests/shared/config/test_bad_settings.py (code quotes aside), with its answer whole or cut."""
    text = README.read_text(encoding="utf-8").split("## Bad input: what you get back", 1)[1]
    table = text.split("\n## ", 1)[0]
    answers = {case.kind: case.answer for case in CATALOGUE}
    rows = [(row["kind"], row["answer"]) for row in SETTING_ROW.finditer(table)]
    assert len(rows) >= 30
    for kind, shown in rows:
        answer = answers.get(kind.replace("`", ""), "(not a kind of the catalogue)")
        assert shown in (answer, answer[: SHOWN - 1] + "…"), (kind, answer)
