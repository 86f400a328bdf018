"""``python -m devtools.screenshot`` makes the README's console pictures: run into a folder of
the test's own, in Debian's Chromium (a failure saying how to install it when missing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devtools.png import read_rgb
from devtools.screenshot import AUDIT_PNG, MAIN_PNG, VIEWPORT
from tests.e2e.conftest import chromium_path

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]


def test_the_console_pictures_are_made_of_the_running_app(tmp_path: Path) -> None:
    chromium = chromium_path()
    out = tmp_path / "docs"

    done = subprocess.run(
        [sys.executable, "-m", "devtools.screenshot", "--out", str(out), "--chromium", chromium],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert "'customers/USMF/customers-with-errors.xml': 'ProcessedWithErrors'" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([AUDIT_PNG, MAIN_PNG])
    main = read_rgb(out / MAIN_PNG)
    assert (main.width, main.height) == (VIEWPORT["width"], VIEWPORT["height"])
    # A blank or error page has a handful of colours; text, badges and the chart have hundreds.
    assert len(main.colours()) > 200
    audit = read_rgb(out / AUDIT_PNG)
    assert audit.width == VIEWPORT["width"]
    assert 100 < audit.height < VIEWPORT["height"]  # cut below the audit panel
    assert len(audit.colours()) > 50
