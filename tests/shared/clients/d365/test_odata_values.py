"""OData actions answering a `value` that is not a string: read as JSON text, or refused with an
error that names the operation and shows the JSON, never kept as a Python repr."""

from __future__ import annotations

from typing import Any

import pytest

from devtools.d365_emulator import Emulator
from shared.clients.d365 import D365Client, D365ResponseError, ExecutionError, ExecutionErrors
from tests.shared.clients.d365.support import received

MESSAGE_ID = "11111111-2222-3333-4444-555555555555"
EXECUTION_ID = "CustomersV3-2024-05-01T10:00:00-3F2A9C1B0D8E4F6A8B7C6D5E4F3A2B1C"
STATUS_OBJECT = {"Status": "Processed", "D\u00e9tail": [1, 2]}
STATUS_OBJECT_JSON = '{"D\u00e9tail": [1, 2], "Status": "Processed"}'
MIXED_LIST = ["Processed", {"b": 1, "a": "\u00fc"}]
MIXED_LIST_JSON = '["Processed", {"a": "\u00fc", "b": 1}]'
NOT_STRINGS = [
    pytest.param((STATUS_OBJECT, "an object", STATUS_OBJECT_JSON), id="object"),
    pytest.param((MIXED_LIST, "an array", MIXED_LIST_JSON), id="list"),
    pytest.param((5, "a number", "5"), id="number"),
    pytest.param((2.5, "a number", "2.5"), id="float"),
    pytest.param((True, "a boolean", "true"), id="boolean"),
]


def answer(d365: Emulator, action: str, value: Any) -> None:
    """Make the emulator answer `value` for `action`."""
    d365.knobs.odata_values = {action: value}


def refusal(client: D365Client, action: str) -> D365ResponseError:
    """The error the client raises for the forced answer of `action`."""
    calls = {
        "GetMessageStatus": lambda: client.get_message_status(MESSAGE_ID),
        "GetExecutionIdByMessageId": lambda: client.get_execution_id(MESSAGE_ID),
        "GetExecutionSummaryStatus": lambda: client.get_execution_summary_status(EXECUTION_ID),
    }
    with pytest.raises(D365ResponseError) as caught:
        calls[action]()
    return caught.value


STRING_ACTIONS = [
    pytest.param(("GetMessageStatus", "the message status", f"message {MESSAGE_ID}"), id="status"),
    pytest.param(
        ("GetExecutionIdByMessageId", "the execution id", f"message {MESSAGE_ID}"),
        id="execution-id",
    ),
    pytest.param(
        (
            "GetExecutionSummaryStatus",
            "the execution summary status",
            f"execution {EXECUTION_ID}",
        ),
        id="summary",
    ),
]


@pytest.mark.parametrize("case", STRING_ACTIONS)
@pytest.mark.parametrize("odd", NOT_STRINGS)
def test_a_value_that_must_be_a_string_is_refused_showing_its_json(
    client: D365Client,
    d365: Emulator,
    case: tuple[str, str, str],
    odd: tuple[Any, str, str],
) -> None:
    action, what, ids = case
    value, kind, json_text = odd
    answer(d365, action, value)

    error = refusal(client, action)

    url = f"{d365.base_url}/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."
    assert str(error) == (
        f"{action} (POST {url}{action}; {ids}) returned a response the client cannot read: "
        f"expected {what} as a JSON string, got {kind}: {json_text}"
    )
    assert (error.operation, error.status_code, error.url) == (action, 200, url + action)
    assert '"value":' in error.body
    assert len(received(d365, action)) == 1  # a 2xx is not retried


def test_a_long_value_is_shown_shortened(client: D365Client, d365: Emulator) -> None:
    answer(d365, "GetMessageStatus", {"Status": "x" * 500})
    text = str(refusal(client, "GetMessageStatus"))
    shown = 'expected the message status as a JSON string, got an object: {"Status": "xxx'
    assert shown in text
    assert text.endswith(("x" * 50) + "...")
    assert len(text.split("got an object: ", 1)[1]) == 200


def test_null_status_reads_as_no_status_yet(client: D365Client, d365: Emulator) -> None:
    answer(d365, "GetMessageStatus", None)
    status = client.get_message_status(MESSAGE_ID)
    assert (status.status, status.raw, status.is_terminal) == (None, "", False)


def test_null_summary_status_reads_as_no_status_yet(client: D365Client, d365: Emulator) -> None:
    answer(d365, "GetExecutionSummaryStatus", None)
    summary = client.get_execution_summary_status(EXECUTION_ID)
    assert (summary.status, summary.raw, summary.is_terminal) == (None, "", False)


def test_null_execution_id_reads_as_not_assigned_yet(client: D365Client, d365: Emulator) -> None:
    answer(d365, "GetExecutionIdByMessageId", None)
    assert client.get_execution_id(MESSAGE_ID) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            STATUS_OBJECT,
            ExecutionErrors(
                errors=(ExecutionError("", "", STATUS_OBJECT_JSON),), raw=STATUS_OBJECT_JSON
            ),
            id="object",
        ),
        pytest.param(
            {"RecordId": 5637144576, "Field": "Name", "ErrorMessage": "Too long"},
            ExecutionErrors(
                errors=(ExecutionError("5637144576", "Name", "Too long"),),
                raw='{"ErrorMessage": "Too long", "Field": "Name", "RecordId": 5637144576}',
            ),
            id="error-object",
        ),
        pytest.param(
            MIXED_LIST,
            ExecutionErrors(
                errors=(
                    ExecutionError("", "", "Processed"),
                    ExecutionError("", "", '{"a": "\u00fc", "b": 1}'),
                ),
                raw=MIXED_LIST_JSON,
            ),
            id="list",
        ),
        pytest.param(
            [{"RecordId": "1", "Field": "F", "ErrorMessage": "\u00fc"}],
            ExecutionErrors(
                errors=(ExecutionError("1", "F", "\u00fc"),),
                raw='[{"ErrorMessage": "\u00fc", "Field": "F", "RecordId": "1"}]',
            ),
            id="error-list",
        ),
        pytest.param(
            5,
            ExecutionErrors(errors=(ExecutionError("", "", "5"),), raw="5", strict=False),
            id="number",
        ),
        pytest.param(
            True,
            ExecutionErrors(errors=(ExecutionError("", "", "true"),), raw="true", strict=False),
            id="boolean",
        ),
        pytest.param(None, ExecutionErrors(errors=(), raw=""), id="null"),
    ],
)
def test_execution_errors_of_any_json_type_keep_their_json_text(
    client: D365Client, d365: Emulator, value: Any, expected: ExecutionErrors
) -> None:
    answer(d365, "GetExecutionErrors", value)
    found = client.get_execution_errors(EXECUTION_ID)
    assert (found.errors, found.raw) == (expected.errors, expected.raw)
    assert found.strict is expected.strict


def test_execution_errors_as_a_string_are_unchanged(client: D365Client, d365: Emulator) -> None:
    text = '[{"RecordId":"1","Field":"F","ErrorMessage":"m"}]'
    answer(d365, "GetExecutionErrors", text)
    found = client.get_execution_errors(EXECUTION_ID)
    assert (found.errors, found.raw, found.strict) == ((ExecutionError("1", "F", "m"),), text, True)


@pytest.mark.parametrize("case", STRING_ACTIONS)
@pytest.mark.parametrize(
    "body", [pytest.param("[" * 100_000, id="nested"), pytest.param("<html>", id="html")]
)
def test_junk_instead_of_json_is_refused_as_unreadable(
    client: D365Client, d365: Emulator, case: tuple[str, str, str], body: str
) -> None:
    """A 200 whose body is not JSON, or JSON nested deeper than the parser goes (which raised
    RecursionError past every handler of junk), is an answer the client cannot read."""
    action, _, ids = case
    d365.knobs.odata_bodies = {action: body}

    error = refusal(client, action)

    assert f"{action} (POST " in str(error)
    assert f"; {ids}) returned a response the client cannot read: expected JSON" in str(error)
    assert (error.operation, error.status_code) == (action, 200)
    assert len(received(d365, action)) == 1
