"""The operator console: one HTML page with its style and script inline.

The files are plain HTML, CSS and JavaScript in ``shared/console_assets/`` (shipped in the
package, no build step, no CDN). They are put together into one response so the page costs
one keyed request: a ``<script src>`` cannot send the ``x-functions-key`` header, and a key
in asset URLs would be logged. The Content-Security-Policy allows exactly the inline style
and script by their hashes, API calls to this origin, and nothing else; no Referer leaves the
page (its first URL carries ``?code=`` until the script removes it).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ASSETS", "Page", "page"]

ASSETS = Path(__file__).resolve().parent / "console_assets"


@dataclass(frozen=True)
class Page:
    """The console's HTML and the headers it must be served with."""

    body: bytes
    headers: tuple[tuple[str, str], ...]


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@functools.cache
def page() -> Page:
    """The console page (built once per process from the asset files)."""
    style = (ASSETS / "console.css").read_text(encoding="utf-8")
    script = (ASSETS / "console.js").read_text(encoding="utf-8")
    html = (ASSETS / "index.html").read_text(encoding="utf-8")
    html = html.replace("{{style}}", style).replace("{{script}}", script)
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
