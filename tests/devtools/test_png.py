"""``devtools.png`` reads Chromium's screenshots as Chromium itself decodes them, and writes
them again smaller with the same pixels."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from devtools.chromium import CHROMIUM_ARGS
from devtools.png import PngError, RgbImage, encode, read_rgb, recompress
from tests.e2e.conftest import chromium_path

pytestmark = pytest.mark.browser

# Text, a gradient and flat colours: rows Chromium filters in each of PNG's ways.
PAGE = """<body style="margin:0;font:14px sans-serif">
<div style="height:40px;background:linear-gradient(90deg,#1f3a5f,#c62828)"></div>
<p style="margin:4px">Row errors (3) · 5637144577 CustomerGroupId ProcessedWithErrors</p>
<div style="height:30px;background:radial-gradient(circle,#ef8f00,#2e7d32)"></div>
</body>"""
# Chromium's own decoding of the PNG (a data URL drawn on a canvas), as RGB bytes.
DRAWN = """async (url) => {
  const image = new Image();
  image.src = url;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.width;
  canvas.height = image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const rgba = context.getImageData(0, 0, image.width, image.height).data;
  return Array.from(rgba).filter((_, i) => i % 4 !== 3);
}"""


def test_a_screenshot_reads_as_chromium_draws_it_and_recompresses_to_the_same_pixels(
    tmp_path: Path,
) -> None:
    shot = tmp_path / "shot.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(),
            args=[*CHROMIUM_ARGS, "--force-color-profile=srgb"],
        )
        page = browser.new_page(viewport={"width": 240, "height": 100})
        page.set_content(PAGE)
        page.screenshot(path=shot)
        url = "data:image/png;base64," + base64.b64encode(shot.read_bytes()).decode()
        drawn = bytes(page.evaluate(DRAWN, url))
        browser.close()
    size = shot.stat().st_size

    image = read_rgb(shot)
    assert (image.width, image.height) == (240, 100)
    assert b"".join(image.rows) == drawn

    assert recompress(shot) <= size
    assert read_rgb(shot) == image
    # Again, and the file is kept as it is: the unfiltered form is not smaller than itself.
    before = shot.read_bytes()
    recompress(shot)
    assert shot.read_bytes() == before


def test_average_filtered_rows_add_half_of_left_plus_up(tmp_path: Path) -> None:
    # Chromium rarely picks PNG's Average filter (type 3): two rows of it, worked by hand.
    rows = b"\3" + bytes([11, 21, 31, 5, 5, 5]) + b"\3" + bytes([1, 1, 1, 2, 2, 2])
    path = tmp_path / "average.png"
    path.write_bytes(encode(2, 2, rows))

    assert read_rgb(path) == RgbImage(
        2, 2, (bytes([11, 21, 31, 10, 15, 20]), bytes([6, 11, 16, 10, 15, 20]))
    )


def test_what_is_not_an_rgb_png_is_refused_by_name(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(PngError, match=r"notes.png is not a PNG"):
        read_rgb(text)
