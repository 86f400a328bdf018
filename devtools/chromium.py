"""Debian's Chromium, as the browser tests and ``devtools.screenshot`` launch it through
Playwright (``executable_path``: Playwright's own browser download is not used)."""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""Headless, and no traffic of Chromium's own (updates, sync, QUIC): loopback only."""
INSTALL_HINT = "install it with `apt-get install -y chromium` (as root; `make browser` does it)"


def find_chromium(default: str = CHROMIUM) -> str | None:
    """``default`` when it is a file, else ``chromium`` on PATH; None when neither exists."""
    return default if Path(default).is_file() else shutil.which("chromium")
