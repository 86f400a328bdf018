"""``host.json``: the limit it puts on the app's settings (``functionTimeout``)."""

from __future__ import annotations

import functools
import json
from datetime import timedelta
from pathlib import Path

from shared.config.parsers import parse_duration

__all__ = ["APP_ROOT", "function_timeout"]

APP_ROOT = Path(__file__).resolve().parents[2]
"""The app's root: where ``function_app.py`` and ``host.json`` are."""


@functools.cache
def function_timeout(app_root: Path = APP_ROOT) -> timedelta | None:
    """``functionTimeout`` of ``<app_root>/host.json``, read once per process.

    :returns: None when the file or the value is absent, ``-1`` (no limit) or unreadable:
        the host reports a broken ``host.json`` itself.
    """
    try:
        host = json.loads((app_root / "host.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = host.get("functionTimeout") if isinstance(host, dict) else None
    if not isinstance(value, str) or value.strip() == "-1":
        return None
    try:
        return parse_duration(value)
    except ValueError:
        return None
