"""The operator console in a real headless Chromium (Debian's ``chromium``, driven by
Playwright), through the local host on Azurite and the emulator.

The host demands a function key; the page is opened with ``?code=`` as Azure does. Screenshots
of the list and the detail view go to each test's output folder (``tmp_path``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request, Route, expect

from shared.tracking import TrackingState
from tests import fakes, package_files
from tests.e2e.conftest import App, chromium_path, enqueue_requests
from tests.e2e.test_enqueue import VALID
from tests.e2e.test_export import export_route

pytestmark = pytest.mark.browser

KEY = "console-browser-test-key"
HTML_NAME = "<img src=x onerror=alert(1)>.xml"


def test_a_missing_browser_fails_saying_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install -y chromium"):
        chromium_path(str(tmp_path / "no-chromium"))


@pytest.fixture
def keyed_app(app_factory: Callable[..., App]) -> App:
    """The app behind a local host that demands a function key, as Azure does."""
    return app_factory(function_key=KEY)


@pytest.fixture
def console_for(browser: Browser) -> Iterator[Callable[[App], Page]]:
    """Open an app's console (``?code=``), recording every request the page makes; with
    ``fake_clock``, its timers wait for ``page.clock``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    requests: list[Request] = []
    alerts: list[str] = []
    refused: list[str] = []

    def seen(request: Request) -> None:
        # Playwright wraps handlers with attributes: a bound builtin (list.append) will not do.
        requests.append(request)

    def open_page(app: App, *, fake_clock: bool = False) -> Page:
        page = context.new_page()
        if fake_clock:  # the page's timers run when the test moves the clock on
            page.clock.install()
        page.on("request", seen)
        page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
        # Chromium reports what the Content-Security-Policy blocks on the console.
        page.on(
            "console",
            lambda message: (
                refused.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )
        page.goto(f"{app.host.http_url}/api/console?code={KEY}")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        return page

    yield open_page
    context.close()
    assert alerts == []
    assert refused == []
    api_calls = [r for r in requests if urlsplit(r.url).path != "/api/console"]
    assert api_calls, "the page called no API"
    for request in api_calls:
        assert KEY not in request.url
        assert request.headers.get("x-functions-key") == KEY


@pytest.fixture
def console(console_for: Callable[[App], Page], keyed_app: App) -> Callable[[], Page]:
    """Open the console of the keyed app."""
    return lambda: console_for(keyed_app)


def _row(page: Page, blob: str):
    return page.locator("#list tbody tr", has=page.locator("td.blob", has_text=blob))


def test_the_samples_show_with_their_states_and_counts(
    keyed_app: App, console: Callable[[], Page], tmp_path: Path
) -> None:
    app = keyed_app
    blobs = [
        app.upload_sample("customers/USMF/customers-valid.xml"),
        app.upload_sample("customers/USMF/customers-with-errors.xml"),
        app.upload_sample("general-journal/USMF/general-journal.xml"),
        app.upload("unrouted/readme.txt", b"no route for this"),
    ]
    records = app.run_until_terminal(blobs)

    page = console()

    assert "code=" not in page.url
    expect(page.locator("#health-state")).to_have_text("Healthy")
    # run_until_terminal ran the retention timer too: its days and the oldest record kept.
    expect(page.locator("#health-detail")).to_contain_text(
        "retention: records 90 days, exports 90 days, audit 365 days; oldest record 20"
    )
    expect(page.locator("#list tbody tr")).to_have_count(4)
    for blob, record in records.items():
        expect(_row(page, blob).locator(".badge")).to_have_text(record["state"])
    expect(page.locator(".card", has_text="All").locator("b")).to_have_text("4")
    expect(page.locator(".card", has_text="Failed").locator("b")).to_have_text("2")
    expect(page.locator(".card.failed", has_text="ProcessedWithErrors").locator("b")).to_have_text(
        "1"
    )
    expect(page.locator(".card", has_text="Rejected").locator("b")).to_have_text("1")
    expect(page.locator("#route-counts tbody tr")).to_have_count(3)
    # The state filter offers the status model's states (from the page's data block).
    options = page.locator("#f-state option").all_text_contents()
    assert options == ["any", *(state.value for state in TrackingState)]
    page.screenshot(path=tmp_path / "console-list.png", full_page=True)


def test_the_error_files_row_errors_are_in_its_detail_view(
    keyed_app: App, console: Callable[[], Page], tmp_path: Path
) -> None:
    blob = keyed_app.upload_sample("customers/USMF/customers-with-errors.xml")
    record = keyed_app.run_until_terminal([blob])[blob]
    assert record["error_count"] > 0

    page = console()
    _row(page, blob).click()

    detail = page.locator("#detail")
    expect(detail.locator("#detail-blob")).to_have_text(blob)
    expect(detail.locator("#errors h3")).to_have_text(f"Row errors ({record['error_count']})")
    rows = detail.locator("#errors-table tbody tr")
    expect(rows).to_have_count(record["error_count"])
    first = record["errors"][0]
    expect(rows.first.locator("td")).to_have_text(
        [first["record_id"], first["field"], first["message"]]
    )
    facts = detail.locator("#detail-facts")
    expect(facts).to_contain_text(record["message_id"])
    expect(facts).to_contain_text(record["execution_id"])
    expect(facts).to_contain_text(record["archived_to"])
    expect(detail.locator("#history tbody tr")).to_have_count(len(record["history"]))
    page.screenshot(path=tmp_path / "console-detail.png", full_page=True)


def test_a_filter_narrows_the_list(keyed_app: App, console: Callable[[], Page]) -> None:
    blobs = [
        keyed_app.upload_sample("customers/USMF/customers-valid.xml"),
        keyed_app.upload("unrouted/one.txt", b"x"),
        keyed_app.upload("unrouted/two.txt", b"y"),
    ]
    keyed_app.run_until_terminal(blobs)
    page = console()
    expect(page.locator("#list tbody tr")).to_have_count(3)

    page.select_option("#f-state", "Rejected")
    page.click("#apply")
    expect(page.locator("#list tbody tr")).to_have_count(2)

    page.fill("#f-prefix", blobs[2])
    page.click("#apply")
    expect(page.locator("#list tbody tr")).to_have_count(1)
    expect(page.locator("#list td.blob")).to_have_text(blobs[2])


def _chart_counts(page: Page) -> dict[str, int]:
    """The files the chart's bars show, by outcome."""
    found: dict[str, int] = {"processed": 0, "failed": 0, "pending": 0}
    for outcome, count in page.locator("#chart-svg rect.seg").evaluate_all(
        "(rects) => rects.map((r) => [r.dataset.outcome, Number(r.dataset.count)])"
    ):
        found[outcome] += count
    return found


def test_the_chart_shows_files_per_hour_by_outcome_and_pause_stops_the_refresh(
    keyed_app: App, console_for: Callable[..., Page], tmp_path: Path
) -> None:
    app = keyed_app
    blobs = [
        app.upload_sample("customers/USMF/customers-valid.xml"),
        app.upload_sample("customers/USMF/customers-with-errors.xml"),
        app.upload("unrouted/readme.txt", b"no route for this"),
    ]
    app.run_until_terminal(blobs)
    page = console_for(app, fake_clock=True)

    expect(page.locator("#chart-svg")).to_have_attribute("role", "img")
    expect(page.locator("#chart-title")).to_have_text("Files per hour by outcome (UTC)")
    # The last 24 hours touch 25 hours of the clock: the one they start in is the first bar.
    expect(page.locator("#chart-desc")).to_contain_text("3 files in 25 hours")
    expect(page.locator("#chart-svg g.hour")).to_have_count(25)
    assert _chart_counts(page) == {"processed": 1, "failed": 2, "pending": 0}
    expect(page.locator("#chart-legend li")).to_have_text(
        ["processed (1)", "failed (2)", "pending (0)"]
    )
    expect(page.locator("#refresh-state")).to_contain_text("refreshes every 30 s")
    page.screenshot(path=tmp_path / "console-chart.png", full_page=True)

    # Paused: a new file does not show, however long the page waits.
    page.click("#auto-refresh")
    expect(page.locator("#auto-refresh")).to_have_text("Resume auto-refresh")
    expect(page.locator("#refresh-state")).to_contain_text("automatic refresh paused")
    late = app.upload("unrouted/late.txt", b"arrived while paused")
    app.run_until_terminal([late])
    page.clock.run_for("02:00")
    page.wait_for_timeout(500)  # a refresh the clock started would have answered by now
    expect(page.locator("#list tbody tr")).to_have_count(3)
    assert _chart_counts(page)["failed"] == 2
    page.screenshot(path=tmp_path / "console-paused.png", full_page=True)

    # Resumed: the page refreshes at once, then every 30 s by itself.
    page.click("#auto-refresh")
    expect(page.locator("#auto-refresh")).to_have_text("Pause auto-refresh")
    expect(page.locator("#list tbody tr")).to_have_count(4)
    expect(page.locator("#chart-legend li").nth(1)).to_have_text("failed (3)")
    later = app.upload("unrouted/later.txt", b"arrived while running")
    app.run_until_terminal([later])
    page.clock.run_for("00:31")
    expect(page.locator("#list tbody tr")).to_have_count(5)
    assert _chart_counts(page) == {"processed": 1, "failed": 4, "pending": 0}


def test_the_refresh_stops_while_hidden_spares_an_open_detail_and_the_confirmation(
    keyed_app: App, console_for: Callable[..., Page]
) -> None:
    app = keyed_app
    first = app.upload("unrouted/first.txt", b"one")
    app.run_until_terminal([first])
    page = console_for(app, fake_clock=True)
    expect(page.locator("#list tbody tr")).to_have_count(1)
    visibility = """(state) => {
        Object.defineProperty(document, "visibilityState", { value: state, configurable: true });
        document.dispatchEvent(new Event("visibilitychange"));
    }"""

    page.evaluate(visibility, "hidden")
    hidden = app.upload("unrouted/hidden.txt", b"two")
    app.run_until_terminal([hidden])
    page.clock.run_for("02:00")
    page.wait_for_timeout(500)
    expect(page.locator("#list tbody tr")).to_have_count(1)
    page.evaluate(visibility, "visible")  # back: refreshed at once
    expect(page.locator("#list tbody tr")).to_have_count(2)

    # An open detail keeps the list as it is; the counts still move on.
    _row(page, first).click()
    expect(page.locator("#detail-blob")).to_have_text(first)
    page.click("#detail-blob")  # the focus leaves the list: the open detail alone keeps it
    third = app.upload("unrouted/third.txt", b"three")
    app.run_until_terminal([third])
    page.clock.run_for("00:31")
    expect(page.locator(".card", has_text="All").locator("b")).to_have_text("3")
    expect(page.locator("#list tbody tr")).to_have_count(2)
    expect(page.locator("#detail-blob")).to_have_text(first)

    # The confirmation open: nothing is refreshed under it.
    counted: list[str] = []
    page.on("request", lambda r: counted.append(r.url) if "/api/counts" in r.url else None)
    page.click("#resubmit")
    expect(page.locator("#confirm")).to_be_visible()
    page.clock.run_for("01:01")
    page.wait_for_timeout(500)
    assert counted == []
    page.click("#confirm-cancel")
    with page.expect_request(lambda r: "/api/counts" in r.url):  # closed: refreshed again
        page.clock.run_for("00:31")


def test_one_refresh_runs_at_a_time_and_a_click_meanwhile_runs_once_after_it(
    keyed_app: App, console_for: Callable[..., Page]
) -> None:
    blob = keyed_app.upload("unrouted/one.txt", b"one")
    keyed_app.run_until_terminal([blob])
    page = console_for(keyed_app, fake_clock=True)
    held: list[Route] = []  # the counts requests the test has not let through yet

    def hold(route: Route) -> None:  # a function: Playwright cannot wrap a bound builtin
        held.append(route)

    page.route("**/api/counts?**", hold)

    def held_after(seconds: float) -> int:
        page.wait_for_timeout(seconds * 1000)
        return len(held)

    page.click("#refresh")
    assert held_after(0.5) == 1
    page.click("#refresh")
    page.click("#refresh")
    page.clock.run_for("05:00")  # the timer's refreshes find one running
    assert held_after(0.5) == 1
    held[0].continue_()
    assert held_after(0.5) == 2  # the clicks: one refresh more, after it
    held[1].continue_()
    assert held_after(0.5) == 2
    expect(page.locator("#refresh-state")).to_contain_text("refreshes every")


def test_resubmitting_a_refused_file_double_clicked_processes_it_once(
    keyed_app: App, console: Callable[[], Page], tmp_path: Path
) -> None:
    app = keyed_app
    app.d365.knobs.max_enqueue_bytes = 16
    blob = app.upload("customers/USMF/refused.xml", VALID)
    old = app.run_until_terminal([blob])[blob]
    assert old["state"] == "EnqueueFailed"
    app.d365.knobs.max_enqueue_bytes = None  # the cause is fixed

    page = console()
    _row(page, blob).click()
    page.click("#resubmit")
    expect(page.locator("#confirm")).to_be_visible()
    expect(page.locator("#confirm-risk")).to_be_hidden()
    page.dblclick("#confirm-ok")

    expect(page.locator("#resubmit-result")).to_contain_text("Resubmitted as record")
    new = app.run_until_terminal([blob])[blob]
    assert new["state"] == "Processed"
    assert new["resubmit_of"] == old["record_key"]
    page.click("#resubmit-result a.record-link")
    expect(page.locator("#detail .badge").first).to_have_text("Processed")
    expect(page.locator("#detail-facts")).to_contain_text(old["record_key"])
    assert app.get(f"messages/{old['record_key']}").json()["resubmitted_as"] == new["record_key"]
    assert len(enqueue_requests(app.d365)) == 1
    page.screenshot(path=tmp_path / "console-resubmitted.png", full_page=True)


def test_the_audit_view_shows_who_resubmitted_which_records_and_links_them(
    keyed_app: App, console: Callable[[], Page], tmp_path: Path
) -> None:
    app = keyed_app
    app.d365.knobs.max_enqueue_bytes = 16
    blob = app.upload("customers/USMF/audited.xml", VALID)
    old = app.run_until_terminal([blob])[blob]
    app.d365.knobs.max_enqueue_bytes = None
    page = console()
    _row(page, blob).click()
    page.click("#resubmit")
    page.click("#confirm-ok")
    expect(page.locator("#resubmit-result")).to_contain_text("Resubmitted as record")
    # The record names who resubmitted it (key mode: whoever holds the function key).
    expect(page.locator("#detail-facts")).to_contain_text("Resubmitted byfunction key")
    new = app.run_until_terminal([blob])[blob]
    (entry,) = app.get("audit").json()["items"]

    page.click("#view-audit")

    rows = page.locator("#audit tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.locator("td.actor")).to_have_text("function key")
    expect(rows).to_contain_text("resubmit")
    expect(rows.locator("td.subject")).to_have_text(blob)
    expect(rows).to_contain_text("done")
    expect(rows).to_contain_text(entry["request_id"])
    expect(rows.locator("a.record-link")).to_have_text([old["record_key"], new["record_key"]])
    expect(page.locator("#imports-view")).to_be_hidden()
    page.screenshot(path=tmp_path / "console-audit.png", full_page=True)
    page.fill("#a-person", "Somebody Else")
    page.click("#a-apply")
    expect(rows).to_have_count(0)
    page.fill("#a-person", "FUNCTION KEY")
    page.click("#a-apply")
    expect(rows).to_have_count(1)
    rows.locator("a.record-link").nth(1).click()
    expect(page.locator("#imports-view")).to_be_visible()
    expect(page.locator("#detail")).to_have_attribute("data-key", new["record_key"])
    expect(page.locator("#detail-facts")).to_contain_text("Resubmit asked byfunction key")


def test_a_blocked_line_shows_who_waits_behind_whom_and_is_released_from_the_detail(
    keyed_app: App, console: Callable[[], Page], tmp_path: Path
) -> None:
    app = keyed_app
    blocker = app.upload("ordered/USMF/l1.xml", b"<Document><unclosed")
    app.deliver()  # tracked before the next exists, whatever order a batch would run in
    time.sleep(1.05)  # a later creation time: its place in the line
    waiting = app.upload("ordered/USMF/l2.xml", VALID)
    time.sleep(1.1)  # ORDER_SETTLE is 1s in the tests
    first = app.run_until_terminal([blocker])[blocker]
    assert first["state"] == "PreProcessingError"

    page = console()
    expect(_row(page, waiting)).to_contain_text("behind a file that blocks its line")
    expect(_row(page, blocker)).to_contain_text("blocks its line")
    _row(page, waiting).click()
    expect(page.locator("#detail-facts")).to_contain_text(f"waiting behind {blocker}")
    expect(page.locator("#detail-facts")).to_contain_text(first["record_key"])
    page.click("#detail-facts a.record-link")
    expect(page.locator("#detail-blob")).to_have_text(blocker)
    page.click("#release")
    expect(page.locator("#confirm-title")).to_have_text("Release the line past this file?")
    page.dblclick("#confirm-ok")

    expect(page.locator("#release-result")).to_contain_text("Line ordered/USMF released")
    expect(page.locator("#detail-facts")).to_contain_text("by function key")
    second = app.run_until_terminal([waiting])[waiting]
    assert second["state"] == "Processed"
    assert len(enqueue_requests(app.d365)) == 2
    page.screenshot(path=tmp_path / "console-line-released.png", full_page=True)


def test_an_outcome_unknown_file_asks_for_a_confirmation_naming_the_risk(
    keyed_app: App, console: Callable[[], Page]
) -> None:
    keyed_app.d365.knobs.drop_after_body_burst = 1
    blob = keyed_app.upload("customers/USMF/unknown.xml", VALID)
    record = keyed_app.run_until_terminal([blob])[blob]
    assert record["last_error"].startswith("outcome unknown")

    page = console()
    _row(page, blob).click()
    page.click("#resubmit")

    expect(page.locator("#confirm-risk")).to_be_visible()
    expect(page.locator("#confirm-risk")).to_contain_text("F&O may already have this file")
    expect(page.locator("#confirm-ok")).to_have_text("Resubmit anyway")
    page.click("#confirm-cancel")
    expect(page.locator("#confirm")).to_be_hidden()
    assert keyed_app.get(f"messages/{record['record_key']}").json()["resubmitted_as"] is None


def test_a_blob_named_with_html_renders_as_text(
    keyed_app: App, console: Callable[[], Page]
) -> None:
    blob = keyed_app.upload(f"customers/USMF/{HTML_NAME}", VALID)
    keyed_app.run_until_terminal([blob])

    page = console()
    expect(_row(page, HTML_NAME).locator("td.blob")).to_have_text(blob)
    _row(page, HTML_NAME).click()
    expect(page.locator("#detail-blob")).to_have_text(blob)
    assert page.locator("img").count() == 0  # the alert is checked by the fixture


def test_the_list_pages_by_continuation(keyed_app: App, console: Callable[[], Page]) -> None:
    blobs = [keyed_app.upload(f"unrouted/page-{i:02d}.txt", b"x") for i in range(55)]
    keyed_app.deliver()
    assert len(keyed_app.records()) == len(blobs)

    page = console()
    expect(page.locator("#list tbody tr")).to_have_count(50)
    page.click("#more")

    expect(page.locator("#list tbody tr")).to_have_count(55)
    expect(page.locator("#more")).to_be_hidden()
    shown = page.locator("#list td.blob").all_text_contents()
    assert sorted(shown) == sorted(blobs)


def test_errors_that_did_not_fit_point_to_their_blob(
    keyed_app: App, console: Callable[[], Page]
) -> None:
    blob = keyed_app.upload("customers/USMF/many-errors.xml", VALID)
    keyed_app.deliver()
    errors = [
        {"RecordId": str(i), "Field": "CUSTOMERGROUPID", "ErrorMessage": f"Group {i} " + "x" * 80}
        for i in range(1500)
    ]
    keyed_app.d365.set_outcome(keyed_app.record(blob)["message_id"], errors=errors)
    record = keyed_app.run_until_terminal([blob])[blob]
    assert record["errors_blob"]

    page = console()
    _row(page, blob).click()

    expect(page.locator("#errors h3")).to_have_text("Row errors (1500)")
    expect(page.locator("#errors-blob code")).to_have_text(record["errors_blob"])
    expect(page.locator("#errors-table tbody tr")).to_have_count(1000)
    expect(page.locator("#errors")).to_contain_text("showing 1000 of 1500")


def test_a_failed_package_shows_its_definition_group_and_error_files(
    keyed_app: App, console: Callable[[], Page], tmp_path: Path
) -> None:
    keyed_app.d365.knobs.package_run_seconds = 0.3
    data = package_files.package([("Customers V3", "Customers V3.xml", b"<Document><broken")])
    blob = keyed_app.upload("pkg/USMF/broken<b>.zip", data)
    record = keyed_app.run_until_terminal([blob])[blob]
    assert (record["state"], record["api"]) == ("ImportFailed", "package")
    [error_file] = record["error_files"]

    page = console()
    expect(_row(page, blob).locator(".badge.failed")).to_have_text("ImportFailed")
    expect(page.locator('.card.failed[data-state="ImportFailed"] b')).to_have_text("1")
    expect(page.locator('.card.failed[data-state=""] b')).to_have_text("1")  # "Failed"
    _row(page, blob).click()

    detail = page.locator("#detail")
    expect(detail.locator("#detail-blob")).to_have_text(blob)
    facts = detail.locator("#detail-facts")
    expect(facts.locator("dt", has_text="Definition group").locator("+ dd")).to_have_text(
        "CustomersPackage"
    )
    expect(facts.locator("dt", has_text="API").first.locator("+ dd")).to_have_text("package")
    expect(facts).to_contain_text(record["execution_id"])
    expect(detail.locator("#error-files li code")).to_have_text([error_file])
    assert error_file.startswith(f"{keyed_app.env['ERRORS_CONTAINER']}/")
    expect(detail.locator("#errors")).to_contain_text("F&O's error files (1)")
    page.screenshot(path=tmp_path / "console-package.png", full_page=True)


def test_the_exports_view_lists_an_export_the_timer_wrote(
    app_factory: Callable[..., App],
    console_for: Callable[[App], Page],
    unique_name: str,
    tmp_path: Path,
) -> None:
    routes = [export_route(unique_name)]
    app = app_factory(function_key=KEY, EXPORT_ROUTES=json.dumps(routes))
    message_id = app.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID, rows=2)
    assert app.host.run_timer_once() >= 2  # poll_status and export_jobs
    [record] = app.get("messages", direction="export").json()["items"]
    assert record["state"] == "Acked"

    page = console_for(app)
    page.locator("#view-exports").click()
    expect(page.locator("#imports-view")).to_be_hidden()
    rows = page.locator("#exports tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".badge.ok")).to_have_text("Acked")
    expect(rows.first).to_contain_text(message_id)
    expect(page.locator("#e-route option")).to_have_text(["any", "customers-out"])
    rows.first.click()

    detail = page.locator("#export-detail")
    expect(detail.locator("#export-message")).to_have_text(message_id)
    [blob] = record["blobs"]
    expect(detail.locator("#export-blobs li code")).to_have_text([f"{record['container']}/{blob}"])
    expect(detail.locator("#export-facts")).to_contain_text(f"{record['size']} bytes")
    expect(detail.locator("#export-history tbody tr td:first-child")).to_have_text(
        ["Dequeued", "Downloaded", "Acked"]
    )
    page.screenshot(path=tmp_path / "console-exports.png", full_page=True)
    page.locator("#view-imports").click()
    expect(page.locator("#exports-view")).to_be_hidden()


def test_an_unzip_too_long_for_its_record_shows_every_blob_in_its_detail(
    app_factory: Callable[..., App], console_for: Callable[[App], Page], unique_name: str
) -> None:
    route = export_route(unique_name, prefix="pkg/{message_id}/", unzip=True, extension=None)
    app = app_factory(function_key=KEY, EXPORT_ROUTES=json.dumps([route]))
    data = package_files.many_members(150, b"<Document/>")
    message_id = app.d365.add_export(fakes.EXPORT_ACTIVITY_ID, data)
    assert app.host.run_timer_once() >= 2  # poll_status and export_jobs
    [record] = app.get("messages", direction="export").json()["items"]
    assert (record["state"], record["blob_count"]) == ("Acked", 150)
    more = 150 - len(record["blobs"])
    assert more > 0

    page = console_for(app)
    page.locator("#view-exports").click()
    row = page.locator("#exports tbody tr").first
    expect(row).to_contain_text(f" and {more} more")
    row.click()

    detail = page.locator("#export-detail")
    expect(detail.locator("#export-message")).to_have_text(message_id)
    expect(detail).to_contain_text(f"Blobs (150) in {record['container']}")
    expect(detail.locator("#export-blobs li")).to_have_count(150)
    expect(detail.locator(".list-more")).to_have_count(0)


def test_an_export_given_up_shows_as_failed_given_up_with_its_reason(
    app_factory: Callable[..., App],
    console_for: Callable[[App], Page],
    unique_name: str,
    tmp_path: Path,
) -> None:
    """Finding 12: the console tells an operator the export will never be written."""
    routes = [export_route(unique_name)]
    app = app_factory(function_key=KEY, EXPORT_ROUTES=json.dumps(routes), EXPORT_MAX_ATTEMPTS="1")
    message_id = app.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    app.d365.lose_export_file(message_id)
    assert app.host.run_timer_once() >= 2  # poll_status and export_jobs
    [record] = app.get("messages", direction="export").json()["items"]
    assert record["state"] == "ExportFailed" and record["gave_up_at"]

    page = console_for(app)
    page.locator("#view-exports").click()
    row = page.locator("#exports tbody tr").first
    expect(row.locator(".badge.failed")).to_have_text("ExportFailed")
    expect(row).to_contain_text("given up")
    row.click()

    facts = page.locator("#export-detail #export-facts")
    expect(facts).to_contain_text("Given up")
    expect(facts).to_contain_text("given up after 1 attempt (EXPORT_MAX_ATTEMPTS)")
    page.screenshot(path=tmp_path / "console-export-given-up.png", full_page=True)


def test_the_exports_view_pages_by_continuation(
    app_factory: Callable[..., App], console_for: Callable[[App], Page], unique_name: str
) -> None:
    app = app_factory(function_key=KEY, EXPORT_ROUTES=json.dumps([export_route(unique_name)]))
    message_ids = {app.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID) for _ in range(53)}
    assert app.host.run_timer_once() >= 2  # poll_status and export_jobs

    page = console_for(app)
    page.locator("#view-exports").click()
    expect(page.locator("#exports tbody tr")).to_have_count(50)
    page.click("#exports-more")

    expect(page.locator("#exports tbody tr")).to_have_count(53)
    expect(page.locator("#exports-more")).to_be_hidden()
    shown = page.locator("#exports tbody tr").evaluate_all("rows => rows.map(r => r.dataset.key)")
    assert set(shown) == message_ids
    page.select_option("#e-route", "customers-out")
    page.click("#e-apply")
    expect(page.locator("#exports tbody tr")).to_have_count(50)
