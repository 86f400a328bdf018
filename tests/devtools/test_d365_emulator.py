"""The D365 emulator over real HTTPS with `requests` and a real ClientSecretCredential: tokens and
401s, enqueue and the message lifecycle, file validation, DMF actions, exports."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
import pytest
import requests
import trustme
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, ClientSecretCredential
from cryptography.hazmat.primitives.asymmetric import rsa

from devtools.d365_emulator import THROTTLE_MESSAGES, App, Emulator, Job, Knobs, MessageIdFormat
from tests import fakes

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
CUSTOMERS_VALID = SAMPLES / "customers" / "USMF" / "customers-valid.xml"
CUSTOMERS_WITH_ERRORS = SAMPLES / "customers" / "USMF" / "customers-with-errors.xml"
GENERAL_JOURNAL = SAMPLES / "general-journal" / "USMF" / "general-journal.xml"
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
DENIED = "Authorization has been denied for this request."
TIMEOUT = 10


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def auth(d365: Emulator, d365_credential: ClientSecretCredential) -> dict[str, str]:
    """The Authorization header with a token from the real credential."""
    return {"Authorization": f"Bearer {d365_credential.get_token(d365.scope).token}"}


@pytest.fixture
def instant(d365: Emulator) -> Emulator:
    """The emulator with zero-length lifecycle phases: messages are terminal at once."""
    d365.knobs.enqueued_seconds = 0
    d365.knobs.preprocessing_seconds = 0
    d365.knobs.processing_seconds = 0
    return d365


def enqueue(
    emu: Emulator,
    headers: dict[str, str],
    body: Any,
    *,
    activity: str = fakes.CUSTOMERS_ACTIVITY_ID,
    entity: str | None = fakes.CUSTOMERS_ENTITY,
    company: str | None = fakes.COMPANY,
    extra_headers: dict[str, str] | None = None,
) -> requests.Response:
    params = {k: v for k, v in (("entity", entity), ("company", company)) if v is not None}
    return requests.post(
        f"{emu.base_url}/api/connector/enqueue/{activity}",
        params=params,
        data=body,
        headers={**headers, **(extra_headers or {})},
        timeout=TIMEOUT,
    )


def action(emu: Emulator, headers: dict[str, str], name: str, **payload: str) -> Any:
    """POST a DMF action; answer its `value`."""
    response = requests.post(
        f"{emu.base_url}/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.{name}",
        json=payload,
        headers=headers,
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["@odata.context"].startswith(f"{emu.base_url}/data/$metadata#")
    return body["value"]


def enqueue_file(emu: Emulator, headers: dict[str, str], content: Path | str, **kwargs: Any) -> str:
    """Enqueue a sample file (or text); answer the message id."""
    data = content.read_bytes() if isinstance(content, Path) else content.encode()
    response = enqueue(emu, headers, data, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def outcome(emu: Emulator, headers: dict[str, str], message_id: str) -> tuple[str, str, list]:
    """(message status, execution summary, execution errors) after the message finished."""
    emu.clock.advance(60)
    status = action(emu, headers, "GetMessageStatus", messageId=message_id)
    execution_id = action(emu, headers, "GetExecutionIdByMessageId", _messageId=message_id)
    summary = action(emu, headers, "GetExecutionSummaryStatus", executionId=execution_id)
    errors = action(emu, headers, "GetExecutionErrors", executionId=execution_id)
    return status, summary, json.loads(errors)


# -- Entra token endpoint -------------------------------------------------------------------


def test_credential_gets_an_rs256_token_for_the_environment(
    d365: Emulator, d365_credential: ClientSecretCredential
) -> None:
    token = d365_credential.get_token(d365.scope)

    assert [r.path for r in d365.requests] == [
        f"/{fakes.TENANT_ID}/v2.0/.well-known/openid-configuration",
        f"/{fakes.TENANT_ID}/oauth2/v2.0/token",
    ]
    assert jwt.get_unverified_header(token.token)["alg"] == "RS256"
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert claims["aud"] == d365.base_url
    assert claims["tid"] == fakes.TENANT_ID
    assert claims["appid"] == claims["azp"] == fakes.CLIENT_ID
    assert claims["oid"]
    assert claims["iss"] == f"{d365.authority_host}/{fakes.TENANT_ID}/v2.0"
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["nbf"] <= claims["iat"]
    token_request = d365.requests[1]
    assert token_request.body is None  # it carries the secret
    assert token_request.body_size > 0


def test_token_lifetime_follows_the_knob(d365: Emulator) -> None:
    d365.knobs.token_lifetime_seconds = 120
    response = requests.post(
        f"{d365.authority_host}/{fakes.TENANT_ID}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": fakes.CLIENT_ID,
            "client_secret": fakes.CLIENT_SECRET,
            "scope": d365.scope,
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    assert response.json()["expires_in"] == 120
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120


@pytest.mark.parametrize(
    ("client_id", "secret", "code"),
    [
        (fakes.CLIENT_ID, "wrong-fake-secret", "AADSTS7000215"),
        ("00000000-0000-0000-0000-0000000000ff", fakes.CLIENT_SECRET, "AADSTS700016"),
    ],
)
def test_bad_client_credentials_are_refused_like_entra(
    d365: Emulator, client_id: str, secret: str, code: str
) -> None:
    response = requests.post(
        f"{d365.authority_host}/{fakes.TENANT_ID}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": d365.scope,
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "invalid_client"
    assert body["error_description"].startswith(code + ": ")
    assert secret not in response.text

    credential = ClientSecretCredential(
        fakes.TENANT_ID,
        client_id,
        secret,
        authority=d365.authority_host,
        disable_instance_discovery=True,
    )
    with credential, pytest.raises(ClientAuthenticationError, match=code):
        credential.get_token(d365.scope)


def test_unknown_tenant_is_refused(d365: Emulator) -> None:
    response = requests.get(
        f"{d365.authority_host}/othertenant/v2.0/.well-known/openid-configuration",
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert "AADSTS90002: Tenant 'othertenant' not found." in response.json()["error_description"]


# -- F&O authentication -----------------------------------------------------------------------


def _token_case(emu: Emulator, case: str) -> dict[str, str]:
    tokens = {
        "signature": lambda: emu.issue_token(
            fakes.CLIENT_ID,
            signing_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ),
        "expired": lambda: emu.issue_token(fakes.CLIENT_ID, lifetime_seconds=-60),
        "audience-slash": lambda: emu.issue_token(fakes.CLIENT_ID, audience=emu.base_url + "/"),
        "audience-other": lambda: emu.issue_token(
            fakes.CLIENT_ID, audience="https://other.fno.localhost"
        ),
    }
    return {} if case == "missing" else {"Authorization": f"Bearer {tokens[case]()}"}


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing", "the request has no bearer token"),
        ("signature", "the bearer token signature is invalid"),
        ("expired", "the bearer token has expired"),
        ("audience-slash", "is not the environment URL"),
        ("audience-other", "'https://other.fno.localhost' is not the environment URL"),
    ],
)
@pytest.mark.parametrize("endpoint", ["enqueue", "GetMessageStatus"])
def test_bad_tokens_get_401(d365: Emulator, case: str, reason: str, endpoint: str) -> None:
    headers = _token_case(d365, case)
    if endpoint == "enqueue":
        response = enqueue(d365, headers, b"<Document />")
    else:
        response = requests.post(
            f"{d365.base_url}/data/DataManagementDefinitionGroups/"
            "Microsoft.Dynamics.DataEntities.GetMessageStatus",
            json={"messageId": ZERO_GUID},
            headers=headers,
            timeout=TIMEOUT,
        )

    assert response.status_code == 401
    message = response.json()["Message"]
    assert message.startswith(DENIED)
    assert reason in message
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert d365.messages == {}


def test_client_not_on_the_jobs_allow_list_gets_401(d365: Emulator) -> None:
    other = ClientSecretCredential(
        fakes.TENANT_ID,
        fakes.OTHER_CLIENT_ID,
        fakes.OTHER_CLIENT_SECRET,
        authority=d365.authority_host,
        disable_instance_discovery=True,
    )
    with other:
        headers = {"Authorization": f"Bearer {other.get_token(d365.scope).token}"}
        response = enqueue(d365, headers, CUSTOMERS_VALID.read_bytes())
        dequeue = requests.get(
            f"{d365.base_url}/api/connector/dequeue/{fakes.EXPORT_ACTIVITY_ID}",
            headers=headers,
            timeout=TIMEOUT,
        )

    for refused in (response, dequeue):
        assert refused.status_code == 401
        assert (
            f"The application '{fakes.OTHER_CLIENT_ID}' is not authorized"
            in (refused.json()["Message"])
        )
    assert d365.messages == {}


# -- enqueue and the lifecycle ----------------------------------------------------------------


@pytest.mark.parametrize(
    "activity",
    [
        fakes.CUSTOMERS_ACTIVITY_ID,
        fakes.CUSTOMERS_ACTIVITY_ID.upper(),
        quote("{" + fakes.CUSTOMERS_ACTIVITY_ID.upper() + "}"),
        "{" + fakes.CUSTOMERS_ACTIVITY_ID + "}",
    ],
    ids=["bare", "upper", "braced-encoded", "braced"],
)
def test_enqueue_accepts_activity_id_spellings(
    d365: Emulator, auth: dict[str, str], activity: str
) -> None:
    response = enqueue(
        d365,
        auth,
        CUSTOMERS_VALID.read_bytes(),
        activity=activity,
        extra_headers={"x-ms-dyn-externalidentifier": "customers-valid.xml"},
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    message_id = response.json()
    assert response.text == f'"{message_id}"'
    message = d365.messages[message_id]
    assert message.activity_id == fakes.CUSTOMERS_ACTIVITY_ID
    assert (message.entity, message.company) == ("CustomersV3", "USMF")
    assert message.external_id == "customers-valid.xml"
    assert message.body_size == CUSTOMERS_VALID.stat().st_size
    assert Path(str(message.body_path)).read_bytes() == CUSTOMERS_VALID.read_bytes()


def test_lifecycle_follows_the_emulator_clock(d365: Emulator, auth: dict[str, str]) -> None:
    message_id = enqueue_file(d365, auth, CUSTOMERS_VALID)

    def observe() -> tuple[str, str, str]:
        status = action(d365, auth, "GetMessageStatus", messageId=message_id)
        execution = action(d365, auth, "GetExecutionIdByMessageId", _messageId=message_id)
        summary = action(d365, auth, "GetExecutionSummaryStatus", executionId=execution)
        return status, execution, summary

    assert observe() == ("Enqueued", ZERO_GUID, "Unknown")
    d365.clock.advance(2)  # knobs: 2 s Enqueued, 3 s Preprocessing, 5 s Processing
    status, execution_id, summary = observe()
    assert (status, summary) == ("Preprocessing", "NotRun")
    assert execution_id.startswith("Importcustomers-")
    project, stamp, suffix = execution_id[:15], execution_id[16:35], execution_id[36:]
    assert project == "Importcustomers"
    assert stamp[4] == "-" and stamp[10] == "T" and len(stamp) == 19
    assert len(suffix) == 32 and suffix == suffix.upper()
    int(suffix, 16)
    d365.clock.advance(3)
    assert observe() == ("Processing", execution_id, "Executing")
    d365.clock.advance(5)
    assert observe() == ("Processed", execution_id, "Succeeded")
    assert action(d365, auth, "GetExecutionErrors", executionId=execution_id) == "[]"
    assert d365.messages[message_id].state == "Processed"


def test_clock_speed_runs_the_lifecycle_faster(d365: Emulator, auth: dict[str, str]) -> None:
    message_id = enqueue_file(d365, auth, CUSTOMERS_VALID)
    d365.clock.speed = 1000.0
    threading.Event().wait(0.05)
    assert action(d365, auth, "GetMessageStatus", messageId=message_id) == "Processed"


def test_customers_with_errors_end_processed_with_errors(
    instant: Emulator, auth: dict[str, str]
) -> None:
    message_id = enqueue_file(instant, auth, CUSTOMERS_WITH_ERRORS)

    status, summary, errors = outcome(instant, auth, message_id)

    assert (status, summary) == ("ProcessedWithErrors", "PartiallySucceeded")
    assert errors == [
        {
            "RecordId": "5637144577",
            "Field": "CustomerGroupId",
            "ErrorMessage": "The value '99' in field 'Customer group' is not found in the "
            "relating table 'Customer groups'.",
        },
        {
            "RecordId": "5637144579",
            "Field": "SalesCurrencyCode",
            "ErrorMessage": "The value 'XYZ' in field 'Currency' is not found in the relating "
            "table 'Currency'.",
        },
        {
            "RecordId": "5637144580",
            "Field": "CustomerAccount",
            "ErrorMessage": "Field 'Customer account' must be filled in.",
        },
    ]
    assert [e.record_id for e in instant.messages[message_id].errors] == [
        "5637144577",
        "5637144579",
        "5637144580",
    ]


def test_general_journal_sample_is_processed(instant: Emulator, auth: dict[str, str]) -> None:
    message_id = enqueue_file(
        instant,
        auth,
        GENERAL_JOURNAL,
        activity=fakes.GENERAL_JOURNAL_ACTIVITY_ID,
        entity="General journal",
    )
    assert outcome(instant, auth, message_id) == ("Processed", "Succeeded", [])


def test_unbalanced_journal_and_bad_date_are_row_errors(
    instant: Emulator, auth: dict[str, str]
) -> None:
    text = GENERAL_JOURNAL.read_text()
    text = text.replace(
        "<CREDITAMOUNT>2050.00</CREDITAMOUNT>", "<CREDITAMOUNT>2000.00</CREDITAMOUNT>"
    )
    text = text.replace(
        "<TRANSDATE>2026-01-15T00:00:00</TRANSDATE>\n    <ACCOUNTTYPE>Ledger"
        "</ACCOUNTTYPE>\n    <ACCOUNTDISPLAYVALUE>618900",
        "<TRANSDATE>2026-02-30</TRANSDATE>\n    <ACCOUNTTYPE>Ledger"
        "</ACCOUNTTYPE>\n    <ACCOUNTDISPLAYVALUE>999999",
    )
    message_id = enqueue_file(
        instant,
        auth,
        text,
        activity=fakes.GENERAL_JOURNAL_ACTIVITY_ID,
        entity="LedgerJournalEntity",
    )

    status, summary, errors = outcome(instant, auth, message_id)

    assert (status, summary) == ("ProcessedWithErrors", "PartiallySucceeded")
    messages = [(e["RecordId"], e["Field"], e["ErrorMessage"]) for e in errors]
    assert messages == [
        (
            "5637144580",
            "TransDate",
            "The value '2026-02-30' in field 'Date' could not be converted to type Date.",
        ),
        (
            "5637144580",
            "AccountDisplayValue",
            "The value '999999' in field 'Main account' is not "
            "found in the relating table 'Main accounts'.",
        ),
        (
            "5637144576",
            "",
            "The transactions on voucher GNJL-S0001 do not balance as per "
            "1/15/2026. (accounting currency: 50.00 - reporting currency: 50.00)",
        ),
    ]


def test_csv_and_xml_attribute_files_are_read(instant: Emulator, auth: dict[str, str]) -> None:
    csv_text = (
        "CUSTOMERACCOUNT,CUSTOMERGROUPID,SALESCURRENCYCODE,ORGANIZATIONNAME\r\n"
        "US-9201,10,USD,Sample CSV One\r\nUS-9202,77,USD,Sample CSV Two\r\n"
    )
    attributes = (
        '<Document><CUSTCUSTOMERV3ENTITY CUSTOMERACCOUNT="US-9301" CUSTOMERGROUPID="10"'
        ' SALESCURRENCYCODE="USD" ORGANIZATIONNAME="Sample Attribute" /></Document>'
    )
    csv_id = enqueue_file(instant, auth, csv_text)
    attribute_id = enqueue_file(instant, auth, attributes)

    status, summary, errors = outcome(instant, auth, csv_id)
    assert (status, summary) == ("ProcessedWithErrors", "PartiallySucceeded")
    assert [e["ErrorMessage"] for e in errors] == [
        "The value '77' in field 'Customer group' is not found in the relating table "
        "'Customer groups'."
    ]
    assert outcome(instant, auth, attribute_id) == ("Processed", "Succeeded", [])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            b"<Document><CUSTCUSTOMERV3ENTITY><CUSTOMERACCOUNT>US-1",
            "The source file is not valid XML",
        ),
        (b"", "The source file is empty."),
        (b"A,B\r\n1,2,3\r\n", "Line 2 has more values than the header has columns."),
    ],
    ids=["truncated-xml", "empty", "ragged-csv"],
)
def test_unreadable_file_ends_pre_processing_error(
    instant: Emulator, auth: dict[str, str], body: bytes, reason: str
) -> None:
    message_id = enqueue(instant, auth, body).json()

    status, summary, errors = outcome(instant, auth, message_id)

    assert (status, summary) == ("PreProcessingError", "Failed")
    assert len(errors) == 1
    assert errors[0]["RecordId"] == "" and reason in errors[0]["ErrorMessage"]


@pytest.mark.parametrize(
    ("company", "expected"),
    [
        (None, ("Processed", "Succeeded")),
        ("usmf", ("Processed", "Succeeded")),
        ("DEMF", ("ProcessedWithErrors", "PartiallySucceeded")),
        ("ZZZZ", ("PreProcessingError", "Failed")),
    ],
)
def test_company_from_message_selects_the_reference_data(
    instant: Emulator, auth: dict[str, str], company: str | None, expected: tuple[str, str]
) -> None:
    message_id = enqueue_file(instant, auth, CUSTOMERS_VALID, company=company)

    status, summary, errors = outcome(instant, auth, message_id)

    assert (status, summary) == expected
    assert instant.messages[message_id].company == (company or "USMF").upper()
    if company == "DEMF":
        assert {e["ErrorMessage"][:14] for e in errors} == {"The value '80'", "The value '90'"}
    if company == "ZZZZ":
        assert errors[0]["ErrorMessage"] == "Company 'ZZZZ' does not exist."


def test_data_package_and_unmodelled_entities_end_processed(
    instant: Emulator, auth: dict[str, str]
) -> None:
    package_id = enqueue_file(
        instant, auth, GENERAL_JOURNAL, activity=fakes.PACKAGE_ACTIVITY_ID, entity=None
    )
    assert outcome(instant, auth, package_id) == ("Processed", "Succeeded", [])


@pytest.mark.parametrize(
    ("activity", "entity", "expected"),
    [
        ("11111111-2222-3333-4444-555555555555", "CustomersV3", (500, "An error has occurred.")),
        ("not-a-guid", "CustomersV3", (500, "An error has occurred.")),
        (fakes.CUSTOMERS_ACTIVITY_ID, None, (400, "The 'entity' query parameter is required")),
        (
            fakes.CUSTOMERS_ACTIVITY_ID,
            "General journal",
            (400, "Entity 'General journal' is not part of data project 'Importcustomers'"),
        ),
    ],
    ids=["unknown-activity", "malformed-activity", "no-entity", "wrong-entity"],
)
def test_enqueue_refusals(
    d365: Emulator,
    auth: dict[str, str],
    activity: str,
    entity: str | None,
    expected: tuple[int, str],
) -> None:
    response = enqueue(d365, auth, CUSTOMERS_VALID.read_bytes(), activity=activity, entity=entity)

    assert response.status_code == expected[0]
    assert expected[1] in response.json()["Message"]
    assert d365.messages == {}
    assert list(d365.spool_dir.iterdir()) == []


def test_entity_aliases_are_accepted(d365: Emulator, auth: dict[str, str]) -> None:
    for entity in ("CustCustomerV3Entity", "customers v3"):
        assert enqueue(d365, auth, CUSTOMERS_VALID.read_bytes(), entity=entity).status_code == 200


def test_unknown_activity_is_404_with_the_knob(d365: Emulator, auth: dict[str, str]) -> None:
    d365.knobs.unknown_ids_not_found = True
    response = enqueue(d365, auth, b"x", activity="11111111-2222-3333-4444-555555555555")
    assert response.status_code == 404
    assert "was not found" in response.json()["Message"]


def test_disabled_job_keeps_messages_enqueued_until_enabled(
    instant: Emulator, auth: dict[str, str]
) -> None:
    instant.set_job_enabled(fakes.CUSTOMERS_ACTIVITY_ID, False)
    message_id = enqueue_file(instant, auth, CUSTOMERS_VALID)
    instant.clock.advance(3600)
    assert action(instant, auth, "GetMessageStatus", messageId=message_id) == "Enqueued"

    instant.set_job_enabled(fakes.CUSTOMERS_ACTIVITY_ID, True)

    assert action(instant, auth, "GetMessageStatus", messageId=message_id) == "Processed"


def test_unknown_ids_get_the_answers_of_an_empty_record(
    d365: Emulator, auth: dict[str, str]
) -> None:
    unknown = "11111111-2222-3333-4444-555555555555"
    assert action(d365, auth, "GetMessageStatus", messageId=unknown) == "Enqueued"
    assert action(d365, auth, "GetExecutionIdByMessageId", _messageId=unknown) == ZERO_GUID
    assert action(d365, auth, "GetExecutionErrors", executionId="Nope-1") == "[]"
    assert action(d365, auth, "GetExecutionSummaryStatus", executionId="Nope-1") == "Unknown"

    d365.knobs.unknown_ids_not_found = True
    base = f"{d365.base_url}/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."
    for name, payload in (
        ("GetMessageStatus", {"messageId": unknown}),
        ("GetExecutionIdByMessageId", {"_messageId": unknown}),
        ("GetExecutionErrors", {"executionId": "Nope-1"}),
        ("GetExecutionSummaryStatus", {"executionId": "Nope-1"}),
    ):
        response = requests.post(base + name, json=payload, headers=auth, timeout=TIMEOUT)
        assert response.status_code == 404
        assert "was not found" in response.json()["error"]["innererror"]["message"]


def test_bad_action_requests_get_odata_errors(d365: Emulator, auth: dict[str, str]) -> None:
    base = f"{d365.base_url}/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."
    missing = requests.post(
        base + "GetMessageStatus", json={"MessageId": "x"}, headers=auth, timeout=TIMEOUT
    )
    unknown = requests.post(base + "NoSuchAction", json={}, headers=auth, timeout=TIMEOUT)

    assert missing.status_code == 400
    assert "'messageId' is missing" in missing.json()["error"]["innererror"]["message"]
    assert unknown.status_code == 404


# -- forced outcomes --------------------------------------------------------------------------


def test_set_outcome_by_message_and_by_job(instant: Emulator, auth: dict[str, str]) -> None:
    first = enqueue_file(instant, auth, CUSTOMERS_VALID)
    instant.set_outcome(
        first,
        "PostProcessingFailed",
        [{"RecordId": "1", "Field": "", "ErrorMessage": "Posting failed."}],
    )
    instant.set_outcome(fakes.PACKAGE_ACTIVITY_ID, "SomethingNew")
    second = enqueue(
        instant, auth, b"PK\x03\x04 fake package", activity=fakes.PACKAGE_ACTIVITY_ID, entity=None
    ).json()

    assert outcome(instant, auth, first) == (
        "PostProcessingFailed",
        "Failed",
        [{"RecordId": "1", "Field": "", "ErrorMessage": "Posting failed."}],
    )
    assert outcome(instant, auth, second)[0] == "SomethingNew"


# -- exports: dequeue, download, ack ----------------------------------------------------------


def _dequeue(emu: Emulator, headers: dict[str, str]) -> requests.Response:
    return requests.get(
        f"{emu.base_url}/api/connector/dequeue/{fakes.EXPORT_ACTIVITY_ID}",
        headers=headers,
        timeout=TIMEOUT,
    )


def _ack(emu: Emulator, headers: dict[str, str], body: dict[str, Any]) -> requests.Response:
    return requests.post(
        f"{emu.base_url}/api/connector/ack/{fakes.EXPORT_ACTIVITY_ID}",
        json=body,
        headers=headers,
        timeout=TIMEOUT,
    )


def test_dequeue_download_ack(d365: Emulator, auth: dict[str, str]) -> None:
    assert _dequeue(d365, auth).status_code == 204
    correlation_id = d365.add_export(fakes.EXPORT_ACTIVITY_ID, b"PK\x03\x04 fake package")

    dequeued = _dequeue(d365, auth)

    assert dequeued.status_code == 200
    body = dequeued.json()
    assert set(body) == {
        "CorrelationId",
        "PopReceipt",
        "DownloadLocation",
        "IsDownLoadFileExist",
        "FileDownLoadErrorMessage",
        "LastDequeueDateTime",
    }
    assert body["CorrelationId"] == correlation_id
    assert body["IsDownLoadFileExist"] is True
    assert body["FileDownLoadErrorMessage"] is None
    assert body["LastDequeueDateTime"] is None
    assert body["DownloadLocation"].startswith(f"{d365.base_url}/api/connector/download/")
    assert action(d365, auth, "GetMessageStatus", messageId=correlation_id) == "Dequeued"
    assert requests.get(body["DownloadLocation"], timeout=TIMEOUT).status_code == 401
    download = requests.get(body["DownloadLocation"], headers=auth, timeout=TIMEOUT)
    assert download.content == b"PK\x03\x04 fake package"
    assert action(d365, auth, "GetMessageStatus", messageId=correlation_id) == "Downloaded"

    subset = {k: body[k] for k in ("CorrelationId", "PopReceipt", "DownloadLocation")}
    acked = _ack(d365, auth, subset)

    assert acked.status_code == 200
    assert acked.content == b""
    assert action(d365, auth, "GetMessageStatus", messageId=correlation_id) == "Acked"
    d365.clock.advance(3600)
    assert _dequeue(d365, auth).status_code == 204


def test_unacked_export_is_redelivered_after_30_minutes(
    d365: Emulator, auth: dict[str, str]
) -> None:
    correlation_id = d365.add_export(fakes.EXPORT_ACTIVITY_ID, b"export")
    first = _dequeue(d365, auth).json()
    d365.clock.advance(1799)
    assert _dequeue(d365, auth).status_code == 204
    d365.clock.advance(2)

    second = _dequeue(d365, auth).json()

    assert second["CorrelationId"] == correlation_id
    assert second["PopReceipt"] != first["PopReceipt"]
    assert second["LastDequeueDateTime"] is not None
    stale = _ack(d365, auth, first)
    assert stale.status_code == 400
    assert "PopReceipt does not match" in stale.json()["Message"]
    assert _ack(d365, auth, second).status_code == 200  # the full dequeue body
    unknown = _ack(d365, auth, {**second, "CorrelationId": ZERO_GUID})
    assert unknown.status_code == 400


def test_download_location_can_be_http(d365: Emulator, auth: dict[str, str]) -> None:
    d365.knobs.download_location_http = True
    d365.add_export(fakes.EXPORT_ACTIVITY_ID, b"export")
    location = _dequeue(d365, auth).json()["DownloadLocation"]
    assert location.startswith(f"http://{d365.host}:{d365.port}/api/connector/download/")


def test_legacy_jobstatus(instant: Emulator, auth: dict[str, str]) -> None:
    message_id = enqueue_file(
        instant,
        auth,
        CUSTOMERS_WITH_ERRORS,
        extra_headers={"x-ms-dyn-externalidentifier": "errors.xml"},
    )
    response = requests.get(
        f"{instant.base_url}/api/connector/jobstatus/{fakes.CUSTOMERS_ACTIVITY_ID}",
        params={"jobId": message_id},
        headers=auth,
        timeout=TIMEOUT,
    )
    status = response.json()["DataJobStatus"]
    assert status["DataJobState"] == 6
    assert status["ExternalIdentifier"] == "errors.xml"
    assert status["ExecutionIdentifier"].startswith("Importcustomers-")


# -- recording and streaming ------------------------------------------------------------------


def test_requests_are_recorded_without_the_token(d365: Emulator, auth: dict[str, str]) -> None:
    body = CUSTOMERS_VALID.read_bytes()
    enqueue(d365, auth, body, extra_headers={"x-ms-dyn-externalidentifier": "c.xml"})

    recorded = next(r for r in d365.requests if r.operation == "enqueue")

    assert recorded.method == "POST"
    assert recorded.path == f"/api/connector/enqueue/{fakes.CUSTOMERS_ACTIVITY_ID}"
    assert recorded.query == {"entity": "CustomersV3", "company": "USMF"}
    assert recorded.headers["Authorization"] == "REDACTED"
    assert recorded.headers["x-ms-dyn-externalidentifier"] == "c.xml"
    assert (recorded.body, recorded.body_size) == (body, len(body))
    assert recorded.body_sha256 == hashlib.sha256(body).hexdigest()
    assert recorded.status == 200
    assert auth["Authorization"].split()[1] not in repr(d365.requests)


def _generated(total: int, chunk: bytes) -> Iterator[bytes]:
    for _ in range(total // len(chunk)):
        yield chunk


def test_large_chunked_upload_goes_to_disk_not_memory(d365: Emulator, auth: dict[str, str]) -> None:
    size, chunk = 64 * 1024 * 1024, b"<!-- padding -->" * 65536  # 1 MiB chunks
    tracemalloc.start()
    try:
        response = enqueue(
            d365, auth, _generated(size, chunk), activity=fakes.PACKAGE_ACTIVITY_ID, entity=None
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert response.status_code == 200
    message = d365.messages[response.json()]
    assert message.body_size == size
    assert Path(str(message.body_path)).stat().st_size == size
    recorded = next(r for r in d365.requests if r.operation == "enqueue")
    assert recorded.headers["Transfer-Encoding"] == "chunked"
    assert recorded.body is None
    digest = hashlib.sha256()
    for part in _generated(size, chunk):
        digest.update(part)
    assert recorded.body_sha256 == digest.hexdigest()
    # Client and server together: a few chunk buffers, far below the 64 MiB uploaded.
    assert peak < 8 * 1024 * 1024, f"peak traced memory {peak} bytes"


# -- fault and format knobs -------------------------------------------------------------------


def _status_call(emu: Emulator, headers: dict[str, str]) -> requests.Response:
    return requests.post(
        f"{emu.base_url}/data/DataManagementDefinitionGroups/"
        "Microsoft.Dynamics.DataEntities.GetMessageStatus",
        json={"messageId": ZERO_GUID},
        headers=headers,
        timeout=TIMEOUT,
    )


def test_latency_delays_fno_calls(d365: Emulator, auth: dict[str, str]) -> None:
    d365.knobs.latency_ms = 150
    started = time.monotonic()
    assert _status_call(d365, auth).status_code == 200
    assert time.monotonic() - started >= 0.15


def test_throttle_burst_answers_429_with_retry_after(d365: Emulator, auth: dict[str, str]) -> None:
    assert THROTTLE_MESSAGES[0] == (
        "Number of requests exeeded the limit of 6000 over the time window of 300 seconds."
    )
    d365.knobs.throttle_burst = 2
    d365.knobs.retry_after = 7
    d365.knobs.throttle_message = THROTTLE_MESSAGES[2]

    throttled = [enqueue(d365, auth, CUSTOMERS_VALID.read_bytes()), _status_call(d365, auth)]
    passed = _status_call(d365, auth)

    assert [r.status_code for r in throttled] == [429, 429]
    assert [r.headers["Retry-After"] for r in throttled] == ["7", "7"]
    assert throttled[0].json() == {
        "Message": "Number of concurrent requests exceeded the limit of 52."
    }
    assert throttled[1].json()["error"]["innererror"]["message"] == THROTTLE_MESSAGES[2]
    assert passed.status_code == 200
    assert d365.messages == {}
    assert list(d365.spool_dir.iterdir()) == []
    assert d365.knobs.throttle_burst == 0


def test_retry_after_as_http_date_or_absent(d365: Emulator, auth: dict[str, str]) -> None:
    d365.knobs.throttle_burst = 2
    d365.knobs.retry_after = 30
    d365.knobs.retry_after_as_date = True
    dated = _status_call(d365, auth)
    d365.knobs.retry_after = None
    bare = _status_call(d365, auth)

    wait = parsedate_to_datetime(dated.headers["Retry-After"]) - datetime.now(UTC)
    assert 25 <= wait.total_seconds() <= 31
    assert bare.status_code == 429
    assert "Retry-After" not in bare.headers


def test_fractions_are_deterministic(d365: Emulator, auth: dict[str, str]) -> None:
    def pattern() -> list[int]:
        d365.reset()
        d365.knobs.throttle_fraction = 0.3
        d365.knobs.error_fraction = 0.2
        return [_status_call(d365, auth).status_code for _ in range(20)]

    first = pattern()

    assert pattern() == first
    assert {429, 503, 200} == set(first)


@pytest.mark.parametrize(
    ("status", "content_type", "text"),
    [
        (500, "application/json", '{"Message":"An error has occurred."}'),
        (503, "text/plain", "Service Unavailable"),
    ],
)
def test_error_burst(
    d365: Emulator, auth: dict[str, str], status: int, content_type: str, text: str
) -> None:
    d365.knobs.error_burst = 1
    d365.knobs.error_status = status

    failed = enqueue(d365, auth, CUSTOMERS_VALID.read_bytes())

    assert failed.status_code == status
    assert failed.headers["Content-Type"].startswith(content_type)
    assert failed.text == text
    assert d365.messages == {}
    assert enqueue(d365, auth, CUSTOMERS_VALID.read_bytes()).status_code == 200


def test_drop_before_body_stores_nothing(d365: Emulator, auth: dict[str, str]) -> None:
    d365.knobs.drop_before_body_burst = 1

    with pytest.raises(requests.ConnectionError):
        enqueue(d365, auth, CUSTOMERS_VALID.read_bytes())

    assert d365.messages == {}
    assert [(r.operation, r.status) for r in d365.requests][-1] == ("enqueue", None)
    assert enqueue(d365, auth, CUSTOMERS_VALID.read_bytes()).status_code == 200


def test_drop_after_body_loses_only_the_answer(d365: Emulator, auth: dict[str, str]) -> None:
    d365.knobs.drop_after_body_burst = 1

    with pytest.raises(requests.ConnectionError):
        enqueue(d365, auth, CUSTOMERS_VALID.read_bytes())

    assert len(d365.messages) == 1
    recorded = next(r for r in d365.requests if r.operation == "enqueue")
    assert (recorded.status, recorded.body_size) == (None, CUSTOMERS_VALID.stat().st_size)


def test_drop_fraction_and_operations_filter(d365: Emulator, auth: dict[str, str]) -> None:
    d365.knobs.drop_fraction = 1.0
    d365.knobs.operations = frozenset({"GetMessageStatus"})

    assert enqueue(d365, auth, CUSTOMERS_VALID.read_bytes()).status_code == 200
    with pytest.raises(requests.ConnectionError):
        _status_call(d365, auth)


def test_max_enqueue_size_answers_413(d365: Emulator, auth: dict[str, str]) -> None:
    d365.knobs.max_enqueue_bytes = 1000
    sized = enqueue(d365, auth, b"x" * 5000)
    chunked = enqueue(d365, auth, iter([b"x" * 600, b"x" * 600]))
    small = enqueue(d365, auth, b"x" * 1000)

    assert (sized.status_code, chunked.status_code, small.status_code) == (413, 413, 200)
    assert "request entity is too large" in sized.text
    assert len(d365.messages) == 1
    assert len(list(d365.spool_dir.iterdir())) == 1


def test_status_variants(d365: Emulator, auth: dict[str, str]) -> None:
    d365.knobs.status_variants = True
    message_id = enqueue_file(d365, auth, CUSTOMERS_VALID)
    d365.set_outcome(message_id, "PostProcessingFailed")
    d365.clock.advance(2)
    assert action(d365, auth, "GetMessageStatus", messageId=message_id) == "PreProcessing"
    d365.clock.advance(60)
    assert action(d365, auth, "GetMessageStatus", messageId=message_id) == "PostProcessingError"


@pytest.mark.parametrize(
    ("form", "template", "content_type"),
    [
        (MessageIdFormat.QUOTED, '"{id}"', "application/json"),
        (MessageIdFormat.BARE, "{id}", "text/plain"),
        (MessageIdFormat.BRACED, '"{{{upper}}}"', "application/json"),
        (MessageIdFormat.UPPER, '"{upper}"', "application/json"),
        (MessageIdFormat.OBJECT, '{{"value":"{id}"}}', "application/json"),
    ],
)
def test_message_id_formats(
    d365: Emulator,
    auth: dict[str, str],
    form: MessageIdFormat,
    template: str,
    content_type: str,
) -> None:
    d365.knobs.message_id_format = form

    response = enqueue(d365, auth, CUSTOMERS_VALID.read_bytes())

    [message_id] = d365.messages
    assert response.text == template.format(id=message_id, upper=message_id.upper())
    assert response.headers["Content-Type"].startswith(content_type)
    assert action(d365, auth, "GetMessageStatus", messageId=response.text) == "Enqueued"


def test_execution_errors_raw_form_is_not_json(instant: Emulator, auth: dict[str, str]) -> None:
    message_id = enqueue_file(instant, auth, CUSTOMERS_VALID)
    tricky = 'Value "A\\B" is not valid.\r\nSee line 2.'
    instant.set_outcome(
        message_id, errors=[{"RecordId": "7", "Field": "Name", "ErrorMessage": tricky}]
    )
    status, summary, errors = outcome(instant, auth, message_id)
    assert (status, summary) == ("ProcessedWithErrors", "PartiallySucceeded")
    assert errors == [{"RecordId": "7", "Field": "Name", "ErrorMessage": tricky}]

    instant.knobs.execution_errors_raw = True
    execution_id = action(instant, auth, "GetExecutionIdByMessageId", _messageId=message_id)
    raw = action(instant, auth, "GetExecutionErrors", executionId=execution_id)

    assert raw == '[{"RecordId":"7","Field":"Name","ErrorMessage":"' + tricky + '"}]'
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)


def test_reset_restores_knobs_in_place(d365: Emulator) -> None:
    knobs = d365.knobs
    knobs.latency_ms = 999
    knobs.message_id_format = MessageIdFormat.BARE
    d365.clock.speed = 50.0

    d365.reset()

    assert d365.knobs is knobs
    assert knobs == Knobs()
    assert d365.clock.speed == 1.0


def test_certificate_credential_gets_a_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    leaf = trustme.CA().issue_cert("fake-client.fno.localhost", key_type=trustme.KeyType.RSA)
    pem = tmp_path / "client.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(pem))
    app = App(fakes.CLIENT_ID, certificate_pem=leaf.cert_chain_pems[0].bytes())
    job = Job(fakes.CUSTOMERS_ACTIVITY_ID, "CustomersV3", allowed_client_ids=(fakes.CLIENT_ID,))

    with Emulator([job], [app], tenant_id=fakes.TENANT_ID) as emu:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emu.ca_bundle))
        monkeypatch.setenv("SSL_CERT_FILE", str(emu.ca_bundle))
        with CertificateCredential(
            fakes.TENANT_ID,
            fakes.CLIENT_ID,
            str(pem),
            authority=emu.authority_host,
            disable_instance_discovery=True,
        ) as credential:
            token = credential.get_token(emu.scope).token
        response = enqueue(emu, {"Authorization": f"Bearer {token}"}, b"<Document />")
        with (
            ClientSecretCredential(
                fakes.TENANT_ID,
                fakes.CLIENT_ID,
                "any-fake-secret",
                authority=emu.authority_host,
                disable_instance_discovery=True,
            ) as secret_credential,
            pytest.raises(ClientAuthenticationError, match="AADSTS7000215"),
        ):
            secret_credential.get_token(emu.scope)

    assert response.status_code == 200
