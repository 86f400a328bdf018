"""Pure parsers for F&O's answers, tolerant where the API's exact shape is unconfirmed.

Each function takes text and returns a record or raises `ValueError` saying what was wrong;
the client turns that into a `D365ResponseError` with the operation and ids.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from shared.clients.bounded_json import loads

from ._models import (
    AzureWriteUrl,
    DequeuedMessage,
    EnqueueResult,
    ExecutionSummaryStatus,
    ExecutionSummaryStatusResult,
    MessageStatus,
    MessageStatusResult,
)
from ._text import get_ci, json_text, json_type, shorten, string_value

__all__ = [
    "fno_error_text",
    "https_download_url",
    "normalize_guid",
    "normalize_message_id",
    "odata_value",
    "parse_azure_write_url",
    "parse_boolean",
    "parse_dequeue",
    "parse_enqueue_response",
    "parse_execution_id",
    "parse_execution_summary_status",
    "parse_export_execution_id",
    "parse_file_url",
    "parse_import_execution_id",
    "parse_message_status",
    "parse_package_url",
]


_SPACE = " \t\r\n\ufeff"
_WRAPPING = _SPACE + "\"'{}"


def normalize_guid(text: str, name: str) -> str:
    """`text` as a bare lower-case GUID; accepts braces, quotes, any case.

    :raises ValueError: naming `name` when `text` is not a GUID.
    """
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, not {type(text).__name__}")
    candidate = text.strip(_WRAPPING)
    try:
        return str(uuid.UUID(candidate))
    except ValueError:
        raise ValueError(
            f"{name} must be a GUID such as 6d31e09f-0249-459f-94f0-aad9c2c47b64, "
            f"got {shorten(text, 60)!r}"
        ) from None


def normalize_message_id(text: str) -> str:
    """A message id as F&O or a person may write it (quoted, braced, upper case, or the
    `{"value": ...}` object) as the lower-case bare GUID used for keys.

    :raises ValueError: when no GUID can be read from `text`.
    """
    candidate = text.strip(_SPACE)
    try:
        decoded = loads(candidate)
    except ValueError:
        decoded = candidate
    if isinstance(decoded, Mapping):
        decoded = get_ci(decoded, "value")
    if not isinstance(decoded, str):
        raise ValueError(f"no message id in {shorten(text)!r}")
    return normalize_guid(decoded, "message_id")


def parse_enqueue_response(text: str) -> EnqueueResult:
    """The enqueue response body as an `EnqueueResult` (normalised id and the raw text).

    :raises ValueError: when the body holds no GUID.
    """
    try:
        message_id = normalize_message_id(text)
    except ValueError:
        raise ValueError(f"expected a message id (GUID), got {shorten(text)!r}") from None
    return EnqueueResult(message_id=message_id, raw_message_id=text)


def odata_value(text: str) -> Any:
    """The `value` of an OData action response `{"@odata.context": ..., "value": ...}`.

    :raises ValueError: when the body is not a JSON object with a `value`.
    """
    try:
        document = loads(text)
    except ValueError:
        raise ValueError(f"expected JSON with a 'value', got {shorten(text)!r}") from None
    if not isinstance(document, Mapping) or not any(k.lower() == "value" for k in document):
        raise ValueError(f"expected JSON with a 'value', got {shorten(text)!r}")
    return get_ci(document, "value")


def parse_message_status(value: Any) -> MessageStatusResult:
    """GetMessageStatus' value: the parsed status and F&O's text ("" for null).

    :raises ValueError: when the value is neither a string nor null.
    """
    raw = string_value(value, "the message status") or ""
    return MessageStatusResult(status=MessageStatus.parse(raw), raw=raw)


def parse_execution_summary_status(value: Any) -> ExecutionSummaryStatusResult:
    """GetExecutionSummaryStatus' value: the parsed status and F&O's text ("" for null).

    :raises ValueError: when the value is neither a string nor null.
    """
    raw = string_value(value, "the execution summary status") or ""
    return ExecutionSummaryStatusResult(status=ExecutionSummaryStatus.parse(raw), raw=raw)


def parse_execution_id(value: Any) -> str | None:
    """GetExecutionIdByMessageId's value; None while not assigned yet (null, empty or the
    all-zero GUID).

    :raises ValueError: when the value is neither a string nor null.
    """
    text = string_value(value, "the execution id")
    if text is None:
        return None
    execution_id = text.strip()
    if not execution_id.strip(_WRAPPING):
        return None
    try:
        if uuid.UUID(execution_id.strip(_WRAPPING)).int == 0:
            return None
    except ValueError:
        pass
    return execution_id


def fno_error_text(text: str) -> str | None:
    """F&O's own error message out of an error body: `error.innererror.message`, then
    `error.message`, then a top-level `Message`; None when the body has none of them."""
    try:
        document = loads(text)
    except ValueError:
        return None
    if isinstance(document, str):
        return document.strip() or None
    if not isinstance(document, Mapping):
        return None
    error = get_ci(document, "error")
    if isinstance(error, Mapping):
        inner = get_ci(error, "innererror")
        for candidate in (
            get_ci(inner, "message") if isinstance(inner, Mapping) else None,
            get_ci(error, "message"),
        ):
            message = _message_text(candidate)
            if message:
                return message
    return _message_text(get_ci(document, "message"))


def _message_text(candidate: Any) -> str | None:
    # OData v3 wraps the message as {"lang": ..., "value": ...}.
    if isinstance(candidate, Mapping):
        candidate = get_ci(candidate, "value")
    if isinstance(candidate, str) and candidate.strip():
        return candidate.strip()
    return None


def parse_dequeue(text: str) -> DequeuedMessage:
    """The dequeue response body as a `DequeuedMessage` (field names matched case-insensitively).

    :raises ValueError: when the body is not a JSON object with the required fields
        (``DownloadLocation`` may be missing or null when ``IsDownLoadFileExist`` is false).
    """
    try:
        document = loads(text)
    except ValueError:
        raise ValueError(f"expected a JSON object, got {shorten(text)!r}") from None
    if not isinstance(document, Mapping):
        raise ValueError(f"expected a JSON object, got {shorten(text)!r}")
    exists = get_ci(document, "IsDownLoadFileExist")
    names = ["CorrelationId", "PopReceipt"]
    if exists is not False or get_ci(document, "DownloadLocation") is not None:
        names.append("DownloadLocation")
    required = {name: get_ci(document, name) for name in names}
    missing = [name for name, found in required.items() if not isinstance(found, str)]
    if missing:
        raise ValueError(f"missing {', '.join(missing)} in {shorten(text)!r}")
    error_message = get_ci(document, "FileDownLoadErrorMessage")
    last_dequeue = get_ci(document, "LastDequeueDateTime")
    return DequeuedMessage(
        correlation_id=required["CorrelationId"],
        pop_receipt=required["PopReceipt"],
        download_location=required.get("DownloadLocation") or "",
        is_download_file_exist=exists if isinstance(exists, bool) else None,
        file_download_error_message=None if error_message is None else str(error_message),
        last_dequeue_date_time=None if last_dequeue is None else str(last_dequeue),
        raw=text,
    )


def https_download_url(location: str) -> str:
    """The dequeue `DownloadLocation` with `http://` made `https://` and `:80` dropped: behind
    F&O's load balancer the location comes back as plain http."""
    parts = urlsplit(location.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"location must be an http(s) URL, got {shorten(location, 80)!r}")
    netloc = parts.netloc
    if parts.scheme.lower() == "http":
        netloc = netloc[: -len(":80")] if netloc.endswith(":80") else netloc
    return urlunsplit(("https", netloc, parts.path, parts.query, parts.fragment))


def parse_azure_write_url(value: Any) -> AzureWriteUrl:
    """GetAzureWriteUrl's value: a JSON *string* holding ``{"BlobId": "{GUID}", "BlobUrl":
    ...}``, parsed again (an object sent as JSON itself is read the same way). The BlobId may
    come braced; a BlobId that is not a GUID is kept as sent, unwrapped.

    Whether the BlobUrl may be called (scheme, host, port) is the URL guard's to judge
    (:mod:`shared.clients.d365._urls`, before the upload), so that every unfit URL gets the same
    refusal; here it need only be text.

    :raises ValueError: when no BlobUrl can be read (the URL is never shown).
    """
    document = value
    if isinstance(value, str):
        try:
            document = loads(value)
        except ValueError:
            raise ValueError(
                "expected the write URL as a JSON string of BlobId and BlobUrl, got "
                f"text of {len(value)} characters that is not JSON"
            ) from None
    if not isinstance(document, Mapping):
        raise ValueError(f"expected BlobId and BlobUrl, got {json_type(document)}")
    url = get_ci(document, "BlobUrl")
    if not isinstance(url, str) or not url.strip():
        got = "none" if url is None else "empty text" if isinstance(url, str) else json_type(url)
        raise ValueError(f"expected BlobUrl to be a URL, got {got}")
    raw_id = get_ci(document, "BlobId")
    blob_id = str(raw_id).strip(_WRAPPING) if raw_id is not None else ""
    with contextlib.suppress(ValueError):
        blob_id = str(uuid.UUID(blob_id))
    return AzureWriteUrl(blob_id=blob_id, url=url.strip())


def parse_import_execution_id(value: Any) -> str | None:
    """ImportFromPackage's value: the execution id, or None when F&O answered none.

    :raises ValueError: when the value is neither a string nor null.
    """
    text = string_value(value, "the execution id")
    return text.strip() or None if text is not None else None


def parse_file_url(value: Any) -> str | None:
    """An error-file URL action's value: the URL, or None for "" / null (no file, or still
    generating).

    :raises ValueError: when the value is neither a string nor null.
    """
    text = string_value(value, "the file URL")
    return (text or "").strip() or None


def parse_boolean(value: Any) -> bool:
    """An ``Edm.Boolean`` value; ``"true"``/``"false"`` text accepted too (any case).

    :raises ValueError: for anything else.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"expected a boolean, got {json_type(value)}: {shorten(json_text(value))}")


def nested_string(value: Any, what: str) -> str | None:
    """A `value` F&O's docs show nested (``{"value": {"value": "<text>"}}``, D-PKG for
    ExportToPackage and GetExportedPackageUrl) while Microsoft's own clients read it flat
    (RIS ``Export.cs``, the DAXI Logic App): either is accepted.

    :raises ValueError: when neither shape holds a string or null.
    """
    if isinstance(value, Mapping) and any(key.lower() == "value" for key in value):
        value = get_ci(value, "value")
    return string_value(value, what)


def parse_export_execution_id(value: Any) -> str | None:
    """ExportToPackage's value: the execution id, or None for "", null or the all-zero GUID
    (the DAXI sample's sign that the export did not start).

    :raises ValueError: when the value is neither a string nor null, flat or nested.
    """
    return parse_execution_id(nested_string(value, "the execution id"))


def parse_package_url(value: Any) -> str | None:
    """GetExportedPackageUrl's value: the SAS URL, or None while it is empty (the package is
    not ready yet).

    :raises ValueError: when the value is neither a string nor null, flat or nested.
    """
    return (nested_string(value, "the package URL") or "").strip() or None
