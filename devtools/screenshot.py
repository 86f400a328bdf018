"""`python -m devtools.screenshot [--out docs/]`: the README's pictures of the console, again.

1. Starts, on loopback and free ports: Azurite (in memory), the D365 emulator (TLS, its CA
   trusted by this process only; messages pass F&O's states at once), the local Functions
   host (``devtools.local_host``) with the settings of ``local.settings.example.json`` and
   App Service authentication played locally (``HTTP_AUTH=entra``), and the local Event Grid
   subscription to the host's blob webhook.
2. Uploads the samples (``samples/``, plus one file no route matches) under their own names,
   delivers their events and runs the timers until every file is final:
   ``customers-with-errors.xml`` ends ``ProcessedWithErrors`` with its row errors, the
   unrouted file ``Rejected``.
3. Opens the console in Debian's headless Chromium through Playwright, signed in as Omar
   Operator, at a fixed viewport and on a fake clock (the page's 30 s auto-refresh never
   redraws it mid-shot), waits for the data and saves ``console.png``: health, who is signed
   in, the counts, the chart of files per hour, the list, and the row errors of the
   ``ProcessedWithErrors`` file.
4. The operator resubmits that file (the API, as the console's button does); once it is final
   again, ``console-audit.png`` is the Audit view with that action.

The PNGs are written again unfiltered (``devtools.png``: smaller for pages of text, the same
pixels). Everything stops at the end; nothing is written but the PNGs. The times, ids and the
chart's hours are those of the run: run it again and the pictures differ only there.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests
from azure.storage.blob import ContainerClient
from playwright.sync_api import Page, expect, sync_playwright

from devtools.azurite import Azurite, free_port
from devtools.chromium import CHROMIUM, CHROMIUM_ARGS, INSTALL_HINT, find_chromium
from devtools.event_grid import EventGridPublisher, Subscription, container_subject
from devtools.local_host import EasyAuth, LocalHost
from devtools.local_host.easy_auth import SESSION_COOKIE
from devtools.png import recompress
from devtools.run_local import (
    REPO_ROOT,
    SAMPLES_DIR,
    SETTINGS_FILES,
    FileStatus,
    StatusClient,
    emulator_for,
    sample_uploads,
    trust_emulator,
)
from devtools.storage_options import STORAGE_OPTIONS
from shared.config import Settings
from shared.tracking import TrackingState

# Named, not __name__: under `python -m` that is "__main__".
_LOGGER = logging.getLogger("devtools.screenshot")

VIEWPORT = {"width": 1200, "height": 1480}
"""Tall enough for the whole imports view with the detail of the file with row errors open."""
OPERATOR = "omar"
"""The person signed in to the console (``devtools.local_host.IDENTITIES``)."""
ERRORS_SAMPLE = "customers/USMF/customers-with-errors.xml"
MAIN_PNG = "console.png"
AUDIT_PNG = "console-audit.png"
_SETTINGS_OVERRIDES = {
    "HTTP_AUTH": "entra",
    # Due at every tick of the timers this command runs, so the files end in seconds.
    "POLL_INTERVAL_MIN": "1s",
    "POLL_INTERVAL_MAX": "2s",
}
_BROWSER_ARGS = [*CHROMIUM_ARGS, "--force-color-profile=srgb", "--disable-lcd-text"]
"""The same colours and grey-scale text on every machine (and a smaller PNG)."""
_TICK = 0.3
_REQUEST_TIMEOUT = (5.0, 30.0)


class ScreenshotError(RuntimeError):
    """The pictures cannot be made; the text says why."""


def app_settings(storage: str, d365_port: int) -> dict[str, str]:
    """The example settings, on this run's Azurite and emulator, with sign-in played locally.

    The shell's own variables are not taken: the pictures never depend on who runs this.
    """
    example = REPO_ROOT / SETTINGS_FILES[1]
    values: Mapping[str, Any] = json.loads(example.read_text(encoding="utf-8"))["Values"]
    d365 = f"https://127.0.0.1:{d365_port}"
    return (
        {key: str(value) for key, value in values.items()}
        | _SETTINGS_OVERRIDES
        | {
            "IntegrationStorage": storage,
            "AzureWebJobsStorage": storage,
            "D365_BASE_URL": d365,
            "D365_AUTHORITY_HOST": d365,
        }
    )


def run_until_final(
    host: LocalHost,
    events: EventGridPublisher,
    status: StatusClient,
    blobs: Sequence[str],
    *,
    timeout: float,
) -> dict[str, FileStatus]:
    """Deliver the new blobs' events and run the timers until every blob's record is final.

    :raises ScreenshotError: some are not final after ``timeout`` seconds (their states named).
    """
    deadline = time.monotonic() + timeout
    while True:
        events.publish_new()
        host.process_blob_queue()
        statuses = {blob: status.get(blob) for blob in blobs}
        if all(s.is_terminal for s in statuses.values()):
            return statuses
        if time.monotonic() > deadline:
            states = {blob: s.state for blob, s in statuses.items() if not s.is_terminal}
            raise ScreenshotError(f"files not final after {timeout:.0f} s: {states}")
        host.run_timer_once()
        time.sleep(_TICK)


def resubmit(base_url: str, token: str, record_key: str) -> None:
    """Resubmit a record as the console's button does, with a request id of its own.

    :raises ScreenshotError: the app refused.
    """
    response = requests.post(
        f"{base_url}/api/messages/{record_key}/resubmit",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
        json={},
        timeout=_REQUEST_TIMEOUT,
    )
    if response.status_code >= 300:
        raise ScreenshotError(f"resubmit answered {response.status_code}: {response.text}")


def shoot_main(page: Page, statuses: Mapping[str, FileStatus], errors_blob: str, out: Path) -> None:
    """The imports view with the list full and the row errors of ``errors_blob`` open."""
    expect(page.locator("#list tbody tr")).to_have_count(len(statuses))
    expect(page.locator("#chart-svg")).to_be_visible()
    expect(page.locator("#health-state")).to_have_text("Healthy")
    row = page.locator("#list tbody tr", has=page.locator("td.blob", has_text=errors_blob))
    row.click()
    count = statuses[errors_blob].record["error_count"]
    expect(page.locator("#errors-table tbody tr")).to_have_count(count)
    page.mouse.move(0, 0)  # no hover colour on the row clicked
    page.screenshot(path=out, animations="disabled", caret="hide")


def shoot_audit(page: Page, out: Path) -> None:
    """The Audit view with its rows loaded, cut below its panel (the rest is empty)."""
    page.click("#view-audit")
    expect(page.locator("#audit tbody tr").first).to_be_visible()
    page.mouse.move(0, 0)
    panel = page.locator("#audit-panel").bounding_box()
    bottom = VIEWPORT["height"] if panel is None else panel["y"] + panel["height"] + 16
    clip = {"x": 0, "y": 0, "width": VIEWPORT["width"], "height": min(bottom, VIEWPORT["height"])}
    page.screenshot(path=out, animations="disabled", caret="hide", clip=clip)


def make_screenshots(out: Path, *, chromium: str, timeout: float = 60.0) -> list[Path]:
    """Start everything, bring the samples to their final states, and save the PNGs to
    ``out``.

    The app's settings (and the emulator's CA bundle) go into ``os.environ``, where the app
    reads them: a process of its own, as ``main`` is.

    :returns: the PNGs written.
    :raises ScreenshotError: a file did not end in time, or the app refused the resubmit.
    """
    out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="screenshot-")))
        azurite = stack.enter_context(Azurite())
        os.environ.update(app_settings(azurite.connection_string, free_port()))
        settings = Settings.from_env()
        emulator = stack.enter_context(emulator_for(settings, state_seconds=0))
        trust_emulator(emulator, scratch / "ca-bundle.pem")
        inbound = stack.enter_context(
            ContainerClient.from_connection_string(
                azurite.connection_string, settings.inbound_container, **STORAGE_OPTIONS
            )
        )
        inbound.create_container()
        easy_auth = EasyAuth()
        host = stack.enter_context(_local_host(azurite.connection_string, easy_auth))
        events = stack.enter_context(
            EventGridPublisher(
                inbound,
                Subscription(
                    name="enqueue-blob",
                    endpoint=host.webhook_url("enqueue_blob"),
                    subject_begins_with=container_subject(inbound.container_name),
                ),
                interval=None,
            )
        )
        status = StatusClient(host.http_url, token=easy_auth.token(OPERATOR))
        stack.callback(status.close)

        uploads = sample_uploads(SAMPLES_DIR, None)
        for upload in uploads:
            inbound.upload_blob(upload.blob_path, upload.data)
        blobs = [upload.blob_path for upload in uploads]
        statuses = run_until_final(host, events, status, blobs, timeout=timeout)
        _LOGGER.info("files final: %s", {b: s.state for b, s in statuses.items()})
        errors = statuses[ERRORS_SAMPLE]
        if errors.state != TrackingState.PROCESSED_WITH_ERRORS.value:
            raise ScreenshotError(f"{ERRORS_SAMPLE} ended {errors.state}, not with row errors")

        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=chromium, args=_BROWSER_ARGS)
        stack.callback(browser.close)
        context = browser.new_context(
            viewport=VIEWPORT,
            device_scale_factor=1,
            locale="en-US",
            timezone_id="UTC",
            color_scheme="light",
        )
        stack.callback(context.close)
        context.add_cookies(
            [{"name": SESSION_COOKIE, "value": easy_auth.session(OPERATOR), "url": host.http_url}]
        )
        page = context.new_page()
        page.clock.install()  # the auto-refresh waits for a clock nobody moves on
        page.goto(f"{host.http_url}/api/console")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        main_png = out / MAIN_PNG
        shoot_main(page, statuses, ERRORS_SAMPLE, main_png)
        _LOGGER.info("saved %s (%d bytes)", main_png, recompress(main_png))

        resubmit(host.http_url, easy_auth.token(OPERATOR), errors.record["record_key"])
        run_until_final(host, events, status, [ERRORS_SAMPLE], timeout=timeout)
        audit_png = out / AUDIT_PNG
        shoot_audit(page, audit_png)
        _LOGGER.info("saved %s (%d bytes)", audit_png, recompress(audit_png))
        return [main_png, audit_png]


def _local_host(connection_string: str, easy_auth: EasyAuth) -> LocalHost:
    from function_app import app

    # Timers only when run_until_final ticks them: every picture shows the same finished run.
    return LocalHost(
        app,
        storage_connection_string=connection_string,
        http_port=0,
        timer_interval=3600,
        easy_auth=easy_auth,
    )


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.screenshot", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "docs", help="folder of the PNGs (default docs/)"
    )
    parser.add_argument("--chromium", default=CHROMIUM, help=f"the browser (default {CHROMIUM})")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds the files may take (default 60)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; 0 when the PNGs are saved, 2 when they cannot be made."""
    args = _parse_args(argv)
    # The app's records from WARNING (a rejected file is one); this command's own from INFO.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _LOGGER.setLevel(logging.INFO)
    chromium = find_chromium(args.chromium)
    if chromium is None:
        _LOGGER.error("no Chromium at %s nor on PATH: %s", args.chromium, INSTALL_HINT)
        return 2
    try:
        make_screenshots(args.out, chromium=chromium, timeout=args.timeout)
    except ScreenshotError as error:
        _LOGGER.error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
