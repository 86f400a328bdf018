"""What the local host's HTTP server sends back: a status, headers and a body."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HttpReply:
    """What goes back to the client."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def json_reply(status: int, body: Mapping[str, Any], *extra: tuple[str, str]) -> HttpReply:
    """A JSON reply (UTF-8) with ``extra`` headers."""
    data = json.dumps(body).encode()
    return HttpReply(status, (("Content-Type", "application/json; charset=utf-8"), *extra), data)
