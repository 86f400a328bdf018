"""GetExecutionErrors' answer read strictly as JSON, else by a tolerant parser that keeps all."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shared.clients.bounded_json import loads

from ._models import ExecutionError, ExecutionErrors
from ._text import get_ci, json_text

__all__ = ["parse_execution_errors"]

# A record starts where a `{"RecordId"` follows the previous record's closing brace.
_RECORD_BOUNDARY = re.compile(r"\}\s*,\s*(?=\{\s*\"RecordId\")", re.IGNORECASE)
_RECORD_KEY = re.compile(r"\"(RecordId|Field|ErrorMessage)\"\s*:\s*", re.IGNORECASE)
_RECORD_FIELDS = {"recordid": "record_id", "field": "field", "errormessage": "message"}
_JSON_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|([\"\\/bfnrt]))")
_JSON_SIMPLE_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}


def parse_execution_errors(value: Any) -> ExecutionErrors:
    """GetExecutionErrors' value (a string holding a JSON array) as `ExecutionErrors`.

    Strict JSON first; when that fails (F&O's messages can carry raw quotes and line breaks)
    a tolerant parser splits on record boundaries and keeps every piece of text. A value that
    is JSON itself rather than a string is read as its JSON text (`json_text`): an array or
    object strictly, a number or boolean by the tolerant parser (one error holding the text);
    null means no errors.
    """
    if isinstance(value, list | Mapping):
        return ExecutionErrors(errors=_errors_from_json(value), raw=json_text(value), strict=True)
    if value is None:
        raw = ""
    elif isinstance(value, str):
        raw = value
    else:
        raw = json_text(value)
    if not raw.strip():
        return ExecutionErrors(errors=(), raw=raw, strict=True)
    try:
        return ExecutionErrors(errors=_errors_from_json(loads(raw)), raw=raw, strict=True)
    except ValueError:
        return ExecutionErrors(errors=_tolerant_errors(raw), raw=raw, strict=False)


def _errors_from_json(document: Any) -> tuple[ExecutionError, ...]:
    if isinstance(document, Mapping):
        document = [document]
    if not isinstance(document, list):
        raise ValueError("execution errors are not a JSON array")
    return tuple(_error_from_mapping(item) for item in document)


def _error_from_mapping(item: Any) -> ExecutionError:
    known = isinstance(item, Mapping) and any(
        get_ci(item, key) is not None for key in ("RecordId", "Field", "ErrorMessage")
    )
    if not known:
        # Not an error record: keep its text as the message rather than lose it.
        return ExecutionError(record_id="", field="", message=_as_text(item))
    return ExecutionError(
        record_id=_as_text(get_ci(item, "RecordId")),
        field=_as_text(get_ci(item, "Field")),
        message=_as_text(get_ci(item, "ErrorMessage")),
    )


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json_text(value)


def _tolerant_errors(raw: str) -> tuple[ExecutionError, ...]:
    try:
        return _errors_from_json(loads(raw, strict=False))
    except ValueError:
        pass
    body = raw.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1].strip()
    return tuple(_tolerant_record(piece) for piece in _RECORD_BOUNDARY.split(body) if piece.strip())


def _tolerant_record(piece: str) -> ExecutionError:
    text = piece.strip()
    if text.startswith("{"):
        text = text[1:]
    if text.endswith("}"):
        text = text[:-1]
    keys = _record_keys(text)
    if not keys:
        return ExecutionError(record_id="", field="", message=piece.strip())
    values: dict[str, str] = {}
    for index, (name, match) in enumerate(keys):
        end = keys[index + 1][1].start() if index + 1 < len(keys) else len(text)
        values[_RECORD_FIELDS[name]] = _loose_json_string(text[match.end() : end])
    return ExecutionError(
        record_id=values.get("record_id", ""),
        field=values.get("field", ""),
        message=values.get("message", ""),
    )


def _record_keys(text: str) -> list[tuple[str, re.Match[str]]]:
    """The first occurrence of each known key that sits where a key can start."""
    keys: list[tuple[str, re.Match[str]]] = []
    seen: set[str] = set()
    for match in _RECORD_KEY.finditer(text):
        name = match.group(1).lower()
        before = text[: match.start()].rstrip()
        if name in seen or (before and not before.endswith(",")):
            continue
        seen.add(name)
        keys.append((name, match))
    return keys


def _loose_json_string(fragment: str) -> str:
    """A JSON value as text, stripped of its delimiters; valid escapes decoded, the rest kept."""
    text = fragment.strip()
    if text.endswith(","):
        text = text[:-1].rstrip()
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return _unescape(text[1:-1])
    return "" if text == "null" else text


def _unescape(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return chr(int(match.group(1), 16))
        return _JSON_SIMPLE_ESCAPES[match.group(2)]

    decoded = _JSON_ESCAPE.sub(replace, text)
    # \uXXXX pairs decode to lone surrogates; join them into the real characters.
    return decoded.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
