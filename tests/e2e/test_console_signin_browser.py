"""The console with ``HTTP_AUTH=entra`` in a real headless Chromium, through the local host
and its stand-in for App Service authentication (``devtools.local_host.easy_auth``); and
forged principal headers in ``key`` mode. Screenshots go to each test's ``tmp_path``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from devtools.local_host import IDENTITIES, EasyAuth, principal_headers
from tests.e2e.conftest import App, enqueue_requests
from tests.e2e.test_enqueue import VALID
from tests.e2e.test_ordered_lines import blocked_line

pytestmark = pytest.mark.browser
IDENTITY = {identity.key: identity for identity in IDENTITIES}
KEY = "signin-browser-key"


@pytest.fixture
def contexts(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """New browser contexts (each its own cookies), closed after the test."""
    made: list[BrowserContext] = []

    def new(**options: object) -> BrowserContext:
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, **options)
        made.append(context)
        return context

    yield new
    for context in made:
        context.close()


def _entra_app(app_factory: Callable[..., App]) -> App:
    return app_factory(HTTP_AUTH="entra", easy_auth=EasyAuth())


def _refused_file(app: App) -> tuple[str, dict]:
    app.d365.knobs.max_enqueue_bytes = 16
    blob = app.upload("customers/USMF/refused.xml", VALID)
    record = app.run_until_terminal([blob])[blob]
    assert record["state"] == "EnqueueFailed"
    app.d365.knobs.max_enqueue_bytes = None
    return blob, record


def _signed_in(context: BrowserContext, app: App, key: str) -> Page:
    """The console, after signing in as ``key`` on the stand-in's sign-in page."""
    page = context.new_page()
    page.goto(f"{app.host.http_url}/api/console")
    page.click(f"#signin-{key}")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    assert urlsplit(page.url).path == "/api/console"
    expect(page.locator("#who-name")).to_have_text(IDENTITY[key].name)
    return page


def _row(page: Page, blob: str):
    return page.locator("#list tbody tr", has=page.locator("td.blob", has_text=blob))


def test_nobody_signed_in_is_sent_to_sign_in_and_comes_back(
    app_factory: Callable[..., App], contexts: Callable[..., BrowserContext], tmp_path: Path
) -> None:
    app = _entra_app(app_factory)
    page = contexts().new_page()
    api_calls: list[str] = []
    page.on("request", lambda r: api_calls.append(r.url) if "/api/" in r.url else None)

    page.goto(f"{app.host.http_url}/api/console")

    expect(page.locator("#identities")).to_be_visible()
    parts = urlsplit(page.url)
    assert parts.path == "/.auth/login/aad"
    assert parts.query == "post_login_redirect_uri=%2Fapi%2Fconsole"
    assert [urlsplit(u).path for u in api_calls] == ["/api/console"]  # no data was asked for
    page.screenshot(path=tmp_path / "signin-chooser.png", full_page=True)
    page.click("#signin-riya")
    expect(page.locator("#who-roles")).to_have_text("Integration.Reader")


def test_a_reader_sees_files_but_no_resubmit_button_and_the_api_refuses_them(
    app_factory: Callable[..., App], contexts: Callable[..., BrowserContext], tmp_path: Path
) -> None:
    app = _entra_app(app_factory)
    blob, record = _refused_file(app)

    page = _signed_in(contexts(), app, "riya")
    expect(_row(page, blob).locator(".badge")).to_have_text("EnqueueFailed")
    # The chart's hours come with the session's cookie, as every API call does.
    expect(page.locator("#chart-svg rect.seg.failed")).to_have_attribute("data-count", "1")
    expect(page.locator("#auto-refresh")).to_have_text("Pause auto-refresh")
    _row(page, blob).click()
    expect(page.locator("#detail-blob")).to_have_text(blob)

    expect(page.locator("#resubmit")).to_have_count(0)
    page.screenshot(path=tmp_path / "signin-reader.png", full_page=True)
    # The button is only hidden: the server refuses the request itself.
    answer = page.evaluate(
        """async (key) => {
            const r = await fetch(`/api/messages/${key}/resubmit`, {method: "POST",
                headers: {"Idempotency-Key": "reader-try", "Content-Type": "application/json"},
                body: "{}"});
            return {status: r.status, body: await r.json()};
        }""",
        record["record_key"],
    )
    assert answer["status"] == 403
    assert answer["body"]["required_role"] == "Integration.Operator"
    assert app.record(blob)["resubmitted_as"] is None


def test_an_operator_resubmits_from_the_console(
    app_factory: Callable[..., App], contexts: Callable[..., BrowserContext], tmp_path: Path
) -> None:
    app = _entra_app(app_factory)
    blob, old = _refused_file(app)

    page = _signed_in(contexts(), app, "omar")
    expect(page.locator("#who-roles")).to_have_text("Integration.Operator")
    _row(page, blob).click()
    page.click("#resubmit")
    page.click("#confirm-ok")

    expect(page.locator("#resubmit-result")).to_contain_text("Resubmitted as record")
    expect(page.locator("#detail-facts")).to_contain_text("Resubmitted byOmar Operator")
    assert app.run_until_terminal([blob])[blob]["resubmit_of"] == old["record_key"]
    assert len(enqueue_requests(app.d365)) == 1
    page.screenshot(path=tmp_path / "signin-operator.png", full_page=True)

    # The audit view names the operator, for them and for a reader alike.
    for person in (page, _signed_in(contexts(), app, "riya")):
        person.click("#view-audit")
        rows = person.locator("#audit tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.locator("td.actor")).to_have_text(
            f"Omar Operator ({IDENTITY['omar'].object_id})"
        )
        expect(rows).to_contain_text("resubmit")
        expect(rows).to_contain_text("done")
    page.screenshot(path=tmp_path / "signin-audit.png", full_page=True)


def test_a_reader_sees_the_blocked_line_but_no_release_button_an_operator_releases_it(
    app_factory: Callable[..., App], contexts: Callable[..., BrowserContext], tmp_path: Path
) -> None:
    app = _entra_app(app_factory)
    blobs, first = blocked_line(app)

    reader = _signed_in(contexts(), app, "riya")
    _row(reader, blobs[0]).click()
    expect(reader.locator("#detail-facts")).to_contain_text("Blocks its line")
    expect(reader.locator("#release")).to_have_count(0)
    expect(reader.locator("#resubmit")).to_have_count(0)
    reader.screenshot(path=tmp_path / "signin-reader-blocked-line.png", full_page=True)

    operator = _signed_in(contexts(), app, "omar")
    _row(operator, blobs[0]).click()
    operator.click("#release")
    operator.click("#confirm-ok")

    expect(operator.locator("#release-result")).to_contain_text("released")
    expect(operator.locator("#detail-facts")).to_contain_text("by Omar Operator")
    assert app.record(blobs[0])["line"]["released_by"]["name"] == "Omar Operator"
    reader.click("#view-audit")
    rows = reader.locator("#audit tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.locator("td.actor")).to_contain_text("Omar Operator")
    expect(rows).to_contain_text("release")
    assert first["record_key"] in rows.inner_text()


def test_a_person_without_a_role_is_told_which_role_to_ask_for(
    app_factory: Callable[..., App], contexts: Callable[..., BrowserContext], tmp_path: Path
) -> None:
    app = _entra_app(app_factory)

    page = _signed_in(contexts(), app, "nina")

    expect(page.locator("#no-role")).to_contain_text("ask an administrator for the app role")
    expect(page.locator("#no-role")).to_contain_text("Integration.Reader")
    expect(page.locator("#no-role")).to_contain_text(
        "Integration.Operator (also to resubmit a file or release a line)"
    )
    expect(page.locator("#imports-view")).to_be_hidden()
    expect(page.locator("#health")).to_be_hidden()  # it would only say the API refused
    page.screenshot(path=tmp_path / "signin-no-role.png", full_page=True)


def test_forged_headers_sign_nobody_in_with_entra(
    app_factory: Callable[..., App], contexts: Callable[..., BrowserContext]
) -> None:
    app = _entra_app(app_factory)
    page = contexts(extra_http_headers=principal_headers(IDENTITY["omar"])).new_page()

    page.goto(f"{app.host.http_url}/api/console")

    expect(page.locator("#identities")).to_be_visible()  # sent to sign in all the same


def test_forged_headers_are_ignored_in_key_mode(
    app_factory: Callable[..., App], contexts: Callable[..., BrowserContext], tmp_path: Path
) -> None:
    app = app_factory(function_key=KEY)
    blob, old = _refused_file(app)
    # A principal of a person with no role, on every request the page makes.
    page = contexts(extra_http_headers=principal_headers(IDENTITY["nina"])).new_page()

    page.goto(f"{app.host.http_url}/api/console?code={KEY}")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")

    expect(page.locator("#who")).to_be_hidden()
    _row(page, blob).click()
    page.click("#resubmit")
    page.click("#confirm-ok")
    expect(page.locator("#resubmit-result")).to_contain_text("Resubmitted as record")
    assert app.run_until_terminal([blob])[blob]["resubmit_of"] == old["record_key"]
    page.screenshot(path=tmp_path / "signin-key-mode-forged.png", full_page=True)


def test_signing_out_or_a_lost_session_sends_the_person_to_sign_in_again(
    app_factory: Callable[..., App], contexts: Callable[..., BrowserContext]
) -> None:
    app = _entra_app(app_factory)
    context = contexts()
    page = _signed_in(context, app, "omar")

    page.click("#sign-out")
    expect(page.locator("#identities")).to_be_visible()

    page.click("#signin-riya")
    expect(page.locator("#who-name")).to_have_text("Riya Reader")
    context.clear_cookies()  # the session ended (expired, or signed out in another tab)
    page.click("#refresh")
    expect(page.locator("#identities")).to_be_visible()
    assert urlsplit(page.url).path == "/.auth/login/aad"
