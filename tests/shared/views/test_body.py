"""Request bodies and request ids under hostile input (Hypothesis): a body is a JSON object or a
BodyError of 400 or 413 saying why; a request id is accepted as sent or refused with a 400;
never another exception."""

from __future__ import annotations

import json

from hypothesis import example, given
from hypothesis import strategies as st

from shared.flows.resubmit import ResubmitError, check_request_id
from shared.views.body import MAX_BODY_BYTES, BodyError, json_object, request_id_of
from tests.hostile import DEEP_JSON, HOSTILE, JSON_VALUES, TEXTS, weighted

EXAMPLE = '{"request_id": "<a new UUID>"}'


def _dumped(value: object, encoding: str) -> bytes:
    # Lone surrogates survive as invalid UTF-8, as a hostile sender could write them.
    return json.dumps(value, ensure_ascii=False).encode(encoding, "surrogatepass")


BODIES = weighted(
    (3, st.builds(_dumped, JSON_VALUES, st.sampled_from(["utf-8", "utf-16", "utf-32-be"]))),
    (1, st.builds(lambda options: _dumped({"request_id": options}, "utf-8"), JSON_VALUES)),
    (1, DEEP_JSON.map(str.encode)),
    (1, st.binary(max_size=200)),
    (1, TEXTS.map(lambda text: text.encode("utf-8", "surrogatepass"))),
)
"""JSON of every type in UTF-8, -16 and -32, nesting, raw bytes, and any text."""


@HOSTILE
@given(body=BODIES)
@example(body=b"[" * 100_000)
@example(body=b"1" * 5000)
@example(body=b'{"a": ' + b"9" * 5000 + b"}")
@example(body=b" " * (MAX_BODY_BYTES + 1))
@example(body=b"\xef\xbb\xbf{}")
def test_a_body_is_a_json_object_or_a_400_or_413_saying_why(body: bytes) -> None:
    try:
        parsed = json_object(body, example=EXAMPLE)
    except BodyError as exc:
        assert exc.status in (400, 413)
        assert str(exc).startswith("the body is "), exc
        assert str(exc).endswith(f"expected e.g. {EXAMPLE}")
        return
    assert isinstance(parsed, dict)


@HOSTILE
@given(
    body=BODIES,
    header=st.none() | TEXTS,
    name=st.sampled_from(["Idempotency-Key", "idempotency-key", "IDEMPOTENCY-KEY"]),
)
def test_a_request_id_is_taken_as_sent_or_refused_with_a_400(
    body: bytes, header: str | None, name: str
) -> None:
    headers = {} if header is None else {name: header}
    try:
        options = json_object(body, example=EXAMPLE)
        request_id = check_request_id(request_id_of(headers, options, example=EXAMPLE))
    except BodyError as exc:
        assert exc.status in (400, 413) and str(exc).strip()
        return
    except ResubmitError as exc:
        assert exc.status == 400 and "request id" in str(exc), exc
        return
    assert request_id in (header, options.get("request_id"))
