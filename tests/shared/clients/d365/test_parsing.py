"""The tolerance rules of DESIGN.md, as pure parsing tests (no server)."""

from __future__ import annotations

import json

import pytest

from shared.clients.d365 import (
    ExecutionError,
    ExecutionSummaryStatus,
    MessageStatus,
    MessageStatusResult,
    RetryPolicy,
    normalize_guid,
    normalize_message_id,
)
from shared.clients.d365._execution_errors import parse_execution_errors
from shared.clients.d365._parsing import (
    fno_error_text,
    https_download_url,
    odata_value,
    parse_dequeue,
    parse_enqueue_response,
    parse_execution_id,
)
from shared.clients.d365._retry import parse_retry_after
from shared.clients.d365._text import shorten

GUID = "84a383c8-336d-45e4-9933-0c3e8bfb734a"


@pytest.mark.parametrize(
    "body",
    [
        f'"{GUID}"',
        GUID,
        f"{{{GUID}}}",
        f'"{{{GUID.upper()}}}"',
        GUID.upper(),
        f' \r\n"{GUID}"\n',
        f'{{"value": "{GUID}"}}',
        f'{{"@odata.context": "x", "Value": "{{{GUID.upper()}}}"}}',
        f'\ufeff"{GUID}"',
    ],
)
def test_enqueue_response_formats_give_the_normalised_id_and_keep_the_raw_text(body: str) -> None:
    result = parse_enqueue_response(body)
    assert result.message_id == GUID
    assert result.raw_message_id == body


@pytest.mark.parametrize("body", ["", "<html>Sign in</html>", '{"value": 5}', '"not-a-guid"'])
def test_enqueue_response_without_a_guid_is_refused_with_the_text(body: str) -> None:
    with pytest.raises(ValueError, match="expected a message id") as caught:
        parse_enqueue_response(body)
    assert repr(shorten(body)) in str(caught.value)


def test_normalize_message_id_accepts_what_people_paste() -> None:
    assert normalize_message_id(f"{{{GUID.upper()}}}") == GUID


@pytest.mark.parametrize("text", ["[" * 2000, '{"value": ' * 2000])
def test_normalize_message_id_refuses_json_nested_deeper_than_the_parser_goes(text: str) -> None:
    # Found by tests/shared/views/test_params.py: RecursionError escaped, so
    # GET /api/messages/[[[... (and F&O's own enqueue answer) was a 500, not a 400.
    with pytest.raises(ValueError, match="message_id must be a GUID"):
        normalize_message_id(text)


def test_normalize_guid_names_the_parameter() -> None:
    assert normalize_guid("{6D31E09F-0249-459F-94F0-AAD9C2C47B64}", "activity_id") == (
        "6d31e09f-0249-459f-94f0-aad9c2c47b64"
    )
    with pytest.raises(ValueError, match="activity_id must be a GUID"):
        normalize_guid("../enqueue", "activity_id")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Processed", MessageStatus.PROCESSED),
        ("processed", MessageStatus.PROCESSED),
        ("PreProcessing", MessageStatus.PREPROCESSING),
        ("Preprocessing", MessageStatus.PREPROCESSING),
        ("PostProcessingError", MessageStatus.POST_PROCESSING_FAILED),
        ("POSTPROCESSINGFAILED", MessageStatus.POST_PROCESSING_FAILED),
        (" ProcessedWithErrors ", MessageStatus.PROCESSED_WITH_ERRORS),
        ("Downloaded", MessageStatus.DOWNLOADED),
        ("Unknown", None),
        ("", None),
    ],
)
def test_message_status_parse(text: str, expected: MessageStatus | None) -> None:
    assert MessageStatus.parse(text) is expected


def test_terminal_statuses() -> None:
    terminal = {status for status in MessageStatus if status.is_terminal}
    assert terminal == {
        MessageStatus.PROCESSED,
        MessageStatus.PROCESSED_WITH_ERRORS,
        MessageStatus.PRE_PROCESSING_ERROR,
        MessageStatus.POST_PROCESSING_FAILED,
    }
    assert not MessageStatusResult(status=None, raw="Archived").is_terminal
    assert MessageStatusResult(
        status=MessageStatus.parse("postprocessingerror"), raw="x"
    ).is_terminal


def test_execution_summary_status_keeps_unknown_text_and_does_not_end_on_unknown() -> None:
    assert ExecutionSummaryStatus.parse("partiallysucceeded") is (
        ExecutionSummaryStatus.PARTIALLY_SUCCEEDED
    )
    assert ExecutionSummaryStatus.parse("Cancelled") is ExecutionSummaryStatus.CANCELED
    assert ExecutionSummaryStatus.parse("Exploded") is None
    assert not ExecutionSummaryStatus.UNKNOWN.is_terminal
    assert ExecutionSummaryStatus.FAILED.is_terminal


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("   ", None),
        (None, None),
        ("00000000-0000-0000-0000-000000000000", None),
        ("{00000000-0000-0000-0000-000000000000}", None),
        ("CustomersV3-2024-01-01T10:00:00-3F6ED28C", "CustomersV3-2024-01-01T10:00:00-3F6ED28C"),
        (f" {GUID} ", GUID),
    ],
)
def test_execution_id_not_assigned_is_none(value: str | None, expected: str | None) -> None:
    assert parse_execution_id(value) == expected


def test_odata_value_reads_value_and_refuses_other_shapes() -> None:
    assert odata_value('{"@odata.context": "c", "value": "Processed"}') == "Processed"
    assert odata_value('{"value": null}') is None
    with pytest.raises(ValueError, match="expected JSON with a 'value'"):
        odata_value("<html>gateway</html>")
    with pytest.raises(ValueError, match="expected JSON with a 'value'"):
        odata_value('{"values": 1}')


def test_execution_errors_strict() -> None:
    raw = json.dumps(
        [
            {"RecordId": "5637144576", "Field": "CustGroup", "ErrorMessage": "Group 'X' missing"},
            {"RecordId": 12, "Field": "", "ErrorMessage": "line\nbreak"},
        ]
    )
    parsed = parse_execution_errors(raw)
    assert parsed.strict
    assert parsed.raw == raw
    assert parsed.errors == (
        ExecutionError("5637144576", "CustGroup", "Group 'X' missing"),
        ExecutionError("12", "", "line\nbreak"),
    )


@pytest.mark.parametrize("value", ["", "[]", None])
def test_no_execution_errors(value: str | None) -> None:
    parsed = parse_execution_errors(value)
    assert parsed.errors == ()
    assert parsed.strict


def test_execution_errors_tolerant_with_raw_quotes_and_newlines() -> None:
    raw = (
        '[{"RecordId":"1","Field":"Color","ErrorMessage":"The value "Blue" is not valid.\r\n'
        'Second line with "quotes", and a comma"},'
        '{"RecordId":"2","Field":"Name","ErrorMessage":"Plain \\"escaped\\" \\u00e9 text"},'
        ' {"RecordId":"3","Field":"","ErrorMessage":"ends with }, {\\"braces\\""}]'
    )
    parsed = parse_execution_errors(raw)
    assert not parsed.strict
    assert parsed.raw == raw
    assert parsed.errors == (
        ExecutionError(
            "1",
            "Color",
            'The value "Blue" is not valid.\r\nSecond line with "quotes", and a comma',
        ),
        ExecutionError("2", "Name", 'Plain "escaped" \u00e9 text'),
        ExecutionError("3", "", 'ends with }, {"braces"'),
    )


def test_execution_errors_tolerant_with_only_raw_newlines_uses_json() -> None:
    raw = '[{"RecordId":"1","Field":"F","ErrorMessage":"a\nb"}]'
    parsed = parse_execution_errors(raw)
    assert not parsed.strict
    assert parsed.errors == (ExecutionError("1", "F", "a\nb"),)


def test_execution_errors_never_lose_text_that_has_no_record_shape() -> None:
    raw = 'Staging failed: "mapping" broken'
    parsed = parse_execution_errors(raw)
    assert parsed.errors == (ExecutionError("", "", raw),)
    assert not parsed.strict


def test_execution_errors_tolerant_keeps_other_field_orders() -> None:
    raw = '[{"ErrorMessage":"bad "x"","RecordId":"7","Field":"F"}]'
    assert parse_execution_errors(raw).errors == (ExecutionError("7", "F", 'bad "x"'),)


def test_fno_error_text_prefers_the_inner_message() -> None:
    body = {"error": {"code": "", "message": "outer", "innererror": {"message": "inner"}}}
    assert fno_error_text(json.dumps(body)) == "inner"
    assert fno_error_text(json.dumps({"error": {"message": "outer"}})) == "outer"
    assert fno_error_text(json.dumps({"error": {"message": {"lang": "en", "value": "v3"}}})) == "v3"
    assert fno_error_text(json.dumps({"Message": "Web API"})) == "Web API"
    assert fno_error_text("<html>x</html>") is None
    assert fno_error_text("{}") is None


def test_shorten() -> None:
    assert shorten("a\n  b\tc") == "a b c"
    long = "x" * 500
    assert shorten(long) == "x" * 197 + "..."


def test_dequeue_body_fields_are_read_case_insensitively() -> None:
    body = json.dumps(
        {
            "CorrelationId": GUID,
            "PopReceipt": "receipt",
            "DownloadLocation": "http://fno.localhost/api/connector/download/x?correlation-id=y",
            "IsDownLoadFileExist": True,
            "FileDownLoadErrorMessage": None,
            "LastDequeueDateTime": None,
        }
    )
    message = parse_dequeue(body.replace("CorrelationId", "correlationId"))
    assert message.correlation_id == GUID
    assert message.is_download_file_exist is True
    assert "receipt" not in repr(message)
    with pytest.raises(ValueError, match="missing PopReceipt"):
        parse_dequeue(json.dumps({"CorrelationId": GUID, "DownloadLocation": "https://x"}))


def test_a_dequeue_answer_without_a_file_may_have_no_download_location() -> None:
    no_file = {"CorrelationId": GUID, "PopReceipt": "r", "IsDownLoadFileExist": False}
    for location in ({}, {"DownloadLocation": None}):
        message = parse_dequeue(json.dumps({**no_file, **location}))
        assert (message.is_download_file_exist, message.download_location) == (False, "")
    with pytest.raises(ValueError, match="missing DownloadLocation"):
        parse_dequeue(json.dumps({**no_file, "IsDownLoadFileExist": True}))


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://fno.localhost/api/x?a=1", "https://fno.localhost/api/x?a=1"),
        ("http://fno.localhost:80/api/x", "https://fno.localhost/api/x"),
        ("HTTP://fno.localhost:8443/api/x", "https://fno.localhost:8443/api/x"),
        ("https://fno.localhost/api/x", "https://fno.localhost/api/x"),
    ],
)
def test_download_location_is_rewritten_to_https(location: str, expected: str) -> None:
    assert https_download_url(location) == expected


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0


def test_backoff_has_full_jitter_under_the_cap() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_max=5.0)
    waits = [policy.backoff(attempt) for attempt in (1, 2, 3, 10) for _ in range(50)]
    assert all(0.0 <= wait <= 5.0 for wait in waits)
    assert max(policy.backoff(1) for _ in range(50)) <= 1.0
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


DEEP = "[" * 100_000  # JSON nested deeper than the parser goes: RecursionError, not ValueError


def test_json_nested_too_deeply_is_junk_like_any_other() -> None:
    with pytest.raises(ValueError, match="expected a JSON object"):
        parse_dequeue(DEEP)
    with pytest.raises(ValueError, match="expected JSON with a 'value'"):
        odata_value(DEEP)
    assert fno_error_text(DEEP) is None
    errors = parse_execution_errors(DEEP)
    assert (errors.strict, errors.raw) == (False, DEEP)
