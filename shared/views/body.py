"""The one reader of the views' request bodies: capped in size, any failure to parse a 400.

Every view that reads a body reads it through :func:`json_object`, so none parses megabytes,
and none turns a hostile body into a 500: nesting is refused before parsing, by
:mod:`shared.clients.bounded_json` (100 KB of ``[`` once raised ``RecursionError``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shared.clients.bounded_json import JsonTooDeepError, loads
from shared.errors import AppError

__all__ = ["MAX_BODY_BYTES", "BodyError", "json_object", "request_id_of"]

MAX_BODY_BYTES = 64 * 1024
"""The largest body parsed. Our bodies hold a few short fields (a resubmit's is under 200
bytes), so this leaves room for any client's formatting while a body cannot cost more than
a small, fixed amount of memory and parsing time."""


class BodyError(AppError):
    """A request body that is refused; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def json_object(body: bytes, *, example: str) -> dict[str, Any]:
    """``body`` as a JSON object; an empty body is an empty object.

    :param example: a body the route takes, quoted in the refusals.
    :raises BodyError: 413 when longer than :data:`MAX_BODY_BYTES`; 400 when it is not UTF-8
        JSON, is nested too deeply to parse, or holds something other than an object.
    """
    if len(body) > MAX_BODY_BYTES:
        raise BodyError(
            413,
            f"the body is {len(body):,} bytes; at most {MAX_BODY_BYTES:,} bytes "
            f"({MAX_BODY_BYTES // 1024} KiB) are accepted; expected e.g. {example}",
        )
    if not body.strip():
        return {}
    try:
        parsed = loads(body)
    except json.JSONDecodeError as exc:
        problem = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    except UnicodeDecodeError:
        problem = "it is not UTF-8 text"
    except JsonTooDeepError as exc:
        problem = f"it is nested too deeply ({exc.depth:,} levels; at most {exc.max_depth})"
    except ValueError:
        problem = "it holds a number of over 4,300 digits"  # int()'s own limit
    else:
        if isinstance(parsed, dict):
            return parsed
        problem = f"it is {_kind(parsed)}"
    raise BodyError(400, f"the body is not a JSON object: {problem}; expected e.g. {example}")


def _kind(value: object) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def request_id_of(
    headers: Mapping[str, str], options: Mapping[str, Any], *, example: str
) -> str | None:
    """An operator action's request id as sent, unchecked: the ``Idempotency-Key`` header,
    else ``request_id`` of the parsed body ``options``.

    :raises BodyError: a ``request_id`` in the body that is not a string.
    """
    from_body = options.get("request_id")
    if from_body is not None and not isinstance(from_body, str):
        raise BodyError(400, f"request_id in the body is not a string; expected e.g. {example}")
    lowered = {name.lower(): value for name, value in headers.items()}
    return lowered.get("idempotency-key") or from_body
