"""The operator console: one HTML page that carries its own style, its own script.

The files are plain HTML, CSS and JavaScript in ``shared/views/console_assets/`` (shipped in the
package, no build step, no CDN). They are put together into one response so the page costs
one keyed request: a ``<script src>`` cannot send the ``x-functions-key`` header, and a key
in asset URLs would be logged. The Content-Security-Policy allows exactly the inline style
and script by their hashes, API calls to this origin, and nothing else; no Referer leaves the
page (its first URL carries ``?code=`` until the script removes it).

The state vocabulary (every :class:`TrackingState`, the failed and the pending ones) comes from
the status model, put into the page as a JSON data block (``<script type="application/json">``)
that the script reads: a data block is never executed, so the policy need not allow it, and the
console has no list of states of its own to fall behind.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.config import HttpAuthMode
from shared.tracking import ExportState, PackageExportState, TrackingState
from shared.views.counts import FAILED_STATES
from shared.views.signin import LOGIN_PATH, ROLE_CLAIM_TYPES, ROUTES, Role

__all__ = ["ASSETS", "Page", "data_block", "page", "signin_data", "vocabulary"]

ASSETS = Path(__file__).resolve().parent / "console_assets"


@dataclass(frozen=True)
class Page:
    """The console's HTML and the headers it must be served with."""

    body: bytes
    headers: tuple[tuple[str, str], ...]


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def vocabulary() -> dict[str, Any]:
    """The states the console shows, in the status model's order: all, failed, pending; and
    the export records' failed and pending states."""
    return {
        "states": [state.value for state in TrackingState],
        "failed": [state.value for state in TrackingState if state in FAILED_STATES],
        "pending": [state.value for state in TrackingState if not state.is_terminal],
        "export_failed": [ExportState.EXPORT_FAILED.value],
        # Taken from F&O but not acknowledged yet, or a package export not final yet: the
        # next export tick goes on with it.
        "export_pending": [
            ExportState.DEQUEUED.value,
            ExportState.DOWNLOADED.value,
            *(state.value for state in PackageExportState if not state.is_final),
        ],
    }


def signin_data(mode: HttpAuthMode) -> dict[str, Any]:
    """What the page's script needs to sign a person in: the mode, the platform's sign-in
    paths, the app roles and the role each route needs (whether to show the resubmit and
    release buttons)."""
    return {
        "mode": mode.value,
        "me": "/.auth/me",
        "login": LOGIN_PATH,
        "logout": "/.auth/logout",
        "roles": [role.value for role in Role],
        "role_claims": list(ROLE_CLAIM_TYPES),
        "operator": Role.OPERATOR.value,
        "routes": {
            name: access.role.value if access.role else None for name, access in ROUTES.items()
        },
    }


def data_block(data: dict[str, Any]) -> str:
    """``data`` as the JSON of a ``<script type="application/json">`` block in the page."""
    # "<" escaped so that no value can close the <script> element it sits in.
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")


@functools.cache
def page(mode: HttpAuthMode = HttpAuthMode.KEY) -> Page:
    """The console page for ``HTTP_AUTH`` ``mode`` (built once per process and mode from the
    asset files)."""
    style = (ASSETS / "console.css").read_text(encoding="utf-8")
    script = (ASSETS / "console.js").read_text(encoding="utf-8")
    html = (ASSETS / "index.html").read_text(encoding="utf-8")
    html = html.replace("{{style}}", style).replace("{{script}}", script)
    html = html.replace("{{vocabulary}}", data_block(vocabulary()))
    html = html.replace("{{signin}}", data_block(signin_data(mode)))
    policy = "; ".join(
        (
            "default-src 'none'",
            f"script-src {_hash(script)}",
            f"style-src {_hash(style)}",
            "connect-src 'self'",
            "img-src 'self' blob: data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )
    headers = (
        ("Content-Security-Policy", policy),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
    )
    return Page(html.encode("utf-8"), headers)
