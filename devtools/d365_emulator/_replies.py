"""Response values the route handlers return, and builders for the shapes F&O and Entra use."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JSON_TYPE = "application/json; charset=utf-8"
# ASP.NET's text for an unhandled exception, in connector and OData error bodies alike.
GENERIC_ERROR = "An error has occurred."
ODATA_TYPE = "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, headers and either bytes or a file streamed from disk."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    file: Path | None = None
    cut_after: int | None = None
    """Send only this many bytes of ``file``, then drop the connection (a broken download)."""


def json_reply(status: int, payload: Any, *, content_type: str = JSON_TYPE) -> Reply:
    """A JSON body."""
    return Reply(status, json.dumps(payload, separators=(",", ":")).encode(), content_type)


def text_reply(status: int, text: str) -> Reply:
    """A plain-text body."""
    return Reply(status, text.encode(), "text/plain; charset=utf-8")


def connector_error(status: int, message: str) -> Reply:
    """An error from the /api/connector endpoints (ASP.NET Web API's `{"Message": ...}` shape)."""
    return json_reply(status, {"Message": message})


def odata_value(base_url: str, value: Any, edm_type: str = "Edm.String") -> Reply:
    """A 200 OData action result: `{"@odata.context": ..., "value": ...}`."""
    payload = {"@odata.context": f"{base_url}/data/$metadata#{edm_type}", "value": value}
    return json_reply(200, payload, content_type=ODATA_TYPE)


def odata_error(status: int, message: str, code: str = "") -> Reply:
    """An OData error body (`error.code`, `error.message`, `error.innererror.message`)."""
    payload = {
        "error": {
            "code": code,
            "message": GENERIC_ERROR,
            "innererror": {"message": message, "type": "System.Exception", "stacktrace": ""},
        }
    }
    return json_reply(status, payload)
