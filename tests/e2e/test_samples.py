"""Each sample file to its outcome, readable over HTTP."""

from tests.e2e.conftest import App


def test_sample_files_reach_their_outcomes_with_errors_over_http(app: App) -> None:
    valid = app.upload_sample("customers/USMF/customers-valid.xml")
    with_errors = app.upload_sample("customers/USMF/customers-with-errors.xml")
    journal = app.upload_sample("general-journal/USMF/general-journal.xml")

    records = app.run_until_terminal([valid, with_errors, journal])

    assert records[valid]["state"] == "Processed"
    assert records[valid]["errors"] == []
    assert records[journal]["state"] == "Processed"
    bad = records[with_errors]
    assert bad["state"] == "ProcessedWithErrors"
    assert bad["error_count"] == len(bad["errors"]) > 0
    assert any("99" in e["message"] for e in bad["errors"])
    for record in records.values():
        assert record["company"] == "USMF"
        assert record["execution_id"]
        assert record["completed_at"]
        assert record["history"][0]["state"] == "Received"

    by_id = app.get(f"messages/{bad['message_id']}")
    assert by_id.status_code == 200
    assert by_id.json()["errors"] == bad["errors"]
