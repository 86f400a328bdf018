"""The 503 ``ServerBusy`` answers Azure Storage gives, per service."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime

from ._http import RequestHead
from ._plan import StorageService

SERVER_BUSY = "ServerBusy"
# Azure Storage's documented text for ServerBusy (503).
SERVER_BUSY_MESSAGE = (
    "The server is currently unable to receive requests. Please retry your request."
)
_SERVER_HEADER = {
    StorageService.BLOB: "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0",
    StorageService.QUEUE: "Windows-Azure-Queue/1.0 Microsoft-HTTPAPI/2.0",
    StorageService.TABLE: "Windows-Azure-Table/1.0 Microsoft-HTTPAPI/2.0",
}


def server_busy(service: StorageService, request: RequestHead, *, keep_alive: bool) -> bytes:
    """A whole 503 response: XML ``<Error>`` for blob and queue, OData JSON for table, with
    ``x-ms-error-code: ServerBusy``, a request id, and the request's ``x-ms-version``."""
    request_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    message = f"{SERVER_BUSY_MESSAGE}\nRequestId:{request_id}\nTime:{now:%Y-%m-%dT%H:%M:%S.%f0Z}"
    if service is StorageService.TABLE:
        body = json.dumps(
            {"odata.error": {"code": SERVER_BUSY, "message": {"lang": "en-US", "value": message}}}
        ).encode("utf-8")
        content_type = "application/json;odata=minimalmetadata;streaming=true;charset=utf-8"
    else:
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f"<Error><Code>{SERVER_BUSY}</Code><Message>{message}</Message></Error>"
        ).encode()
        content_type = "application/xml"
    headers = [
        ("Content-Length", str(0 if request.method == "HEAD" else len(body))),
        ("Content-Type", content_type),
        ("Server", _SERVER_HEADER[service]),
        ("x-ms-request-id", request_id),
        ("x-ms-version", request.head.get("x-ms-version") or "2021-12-02"),
        ("x-ms-error-code", SERVER_BUSY),
        ("Date", format_datetime(now, usegmt=True)),
    ]
    if not keep_alive:
        headers.append(("Connection", "close"))
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    status = "HTTP/1.1 503 Service Unavailable\r\n"
    payload = b"" if request.method == "HEAD" else body
    return (status + head + "\r\n").encode("latin-1") + payload
