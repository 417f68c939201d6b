"""The image editor in a real Chromium against a real server on the tiny model (issue 6, FR-TEST-007).

Upload → draw a mask with the mouse → inpaint → the result appears, every pixel outside the mask is
byte-identical to the upload (checked on the downloaded PNG with Pillow), and the before/after
slider works by keyboard and by mouse; outpaint (dragged edge + typed numbers) and upscale smoke;
the checks before upload, a server refusal shown next to the button, the keyboard mask tools and
undo/redo; axe-core on every state visited.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Locator, Page, expect

Axe = Callable[..., Any]
Shot = Callable[[Page, str], None]
# The first job loads the tiny pipelines and the NSFW checker into the server: seconds on an idle
# machine, minutes on a 2-core one shared by many jobs (seen: outpaint 30 s, upscale 42 s at load 16).
JOB_TIMEOUT_MS = 300_000

# These drive whole edit jobs through the server and the browser (several seconds each).
pytestmark = pytest.mark.slow


def _test_image(path: Path, width: int, height: int) -> np.ndarray:
    """A PNG with structure in every pixel (gradients and a xor pattern), so any change shows."""
    xs, ys = np.meshgrid(np.arange(width), np.arange(height))
    pixels = np.stack([xs * 255 // width, ys * 255 // height, (xs ^ ys) & 255], axis=-1).astype(np.uint8)
    Image.fromarray(pixels, "RGB").save(path)
    return pixels


def _open_editor(page: Page, image: Path) -> None:
    page.goto("/images/edit")
    expect(page.get_by_role("heading", level=1)).to_have_text("Image editor")
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Choose an image…").click()
    chooser.value.set_files(str(image))
    expect(page.get_by_role("application", name=re.compile("canvas"))).to_be_visible()


def _fewest_steps(page: Page) -> None:
    """20 denoising steps (the server's minimum): the tests check pixels and flow, not quality."""
    page.get_by_text("Advanced", exact=True).click()
    steps = page.get_by_role("slider", name="Steps")
    steps.focus()
    page.keyboard.press("Home")
    expect(steps).to_have_value("20")


def _coverage(page: Page) -> Locator:
    return page.get_by_test_id("mask-coverage")


def _download(page: Page, target: Path) -> np.ndarray:
    with page.expect_download() as download:
        page.get_by_role("link", name="Download PNG").click()
    download.value.save_as(target)
    with Image.open(target) as result:
        assert result.format == "PNG"
        return np.asarray(result.convert("RGB"))


def _distance_to_segment(
    xs: np.ndarray, ys: np.ndarray, a: tuple[float, float], b: tuple[float, float]
) -> np.ndarray:
    ax, ay = a
    bx, by = b
    length2 = (bx - ax) ** 2 + (by - ay) ** 2
    t = np.clip(((xs - ax) * (bx - ax) + (ys - ay) * (by - ay)) / length2, 0, 1)
    return np.hypot(xs - (ax + t * (bx - ax)), ys - (ay + t * (by - ay)))


def test_inpaint_with_a_mouse_drawn_mask_keeps_every_other_pixel(
    page: Page, login: Callable[..., None], axe: Axe, screenshot: Shot, tmp_path: Path
) -> None:
    """FR-TEST-007."""
    width, height = 320, 240
    source = _test_image(tmp_path / "photo.png", width, height)
    login(page, "inpaint@example.com", tier="pro")
    page.goto("/images/edit")
    axe(page)  # the empty editor: upload only
    _open_editor(page, tmp_path / "photo.png")
    expect(page.get_by_text(f"photo.png · {width}×{height} px")).to_be_visible()
    expect(_coverage(page)).to_contain_text("Nothing is masked yet")
    axe(page)

    # A horizontal stroke with the mouse, in image pixels from (80, 120) to (240, 120).
    brush = int(page.get_by_role("slider", name="Brush size").input_value())
    box = page.get_by_test_id("mask-canvas").bounding_box()
    assert box is not None
    scale = box["width"] / width
    start, end = (80.0, 120.0), (240.0, 120.0)
    page.mouse.move(box["x"] + start[0] * scale, box["y"] + start[1] * scale)
    page.mouse.down()
    for i in range(1, 17):
        x = start[0] + (end[0] - start[0]) * i / 16
        page.mouse.move(box["x"] + x * scale, box["y"] + end[1] * scale)
    page.mouse.up()
    painted = (end[0] - start[0]) * brush + math.pi * (brush / 2) ** 2
    expected = 100 * painted / (width * height)
    text = _coverage(page).inner_text()
    match = re.search(r"([\d.]+) %", text)
    assert match, text
    shown = float(match.group(1))
    assert abs(shown - expected) < 0.25 * expected, (text, expected)

    # Undo and redo from the keyboard (the stroke is one step).
    page.keyboard.press("Control+z")
    expect(_coverage(page)).to_contain_text("Nothing is masked yet")
    page.keyboard.press("Control+Shift+z")
    expect(_coverage(page)).to_have_text(text)

    page.get_by_label("Prompt", exact=True).fill("a red ribbon across the picture")
    _fewest_steps(page)
    page.get_by_role("heading", level=1).scroll_into_view_if_needed()
    screenshot(page, "editor")
    # Record every progress line the page shows while the job runs (they come over the WebSocket).
    page.evaluate(
        """() => { window.__progress = [];
           new MutationObserver(() => { const p = document.querySelector('.job-progress-text');
             if (p) window.__progress.push(p.textContent); })
           .observe(document.body, { subtree: true, childList: true, characterData: true }); }"""
    )
    page.get_by_role("button", name="Inpaint", exact=True).click()
    divider = page.get_by_role("slider", name="Before and after divider")
    expect(divider).to_be_visible(timeout=JOB_TIMEOUT_MS)
    progress: list[str] = page.evaluate("() => window.__progress")
    assert any(re.match(r"Step \d+ of \d+", line) for line in progress), progress
    axe(page)
    page.locator(".editor-result").evaluate("(el) => el.scrollIntoView({ block: 'start' })")
    screenshot(page, "editor-result")

    result = _download(page, tmp_path / "result.png")
    assert result.shape == source.shape
    ys, xs = np.mgrid[0:height, 0:width]
    distance = _distance_to_segment(xs, ys, start, end)
    outside = distance > brush / 2 + 2  # antialiased stroke edges are thresholded at 50 % either way
    changed = np.any(result != source, axis=-1)
    assert not changed[outside].any(), f"{int(changed[outside].sum())} pixels outside the mask changed"
    inside = distance < brush / 2 - 3
    assert changed[inside].mean() > 0.5, "the masked area was not repainted"

    # The before/after divider by keyboard...
    expect(divider).to_have_attribute("aria-valuenow", "50")
    divider.focus()
    page.keyboard.press("Home")
    expect(divider).to_have_attribute("aria-valuenow", "0")
    page.keyboard.press("End")
    expect(divider).to_have_attribute("aria-valuenow", "100")
    page.keyboard.press("ArrowLeft")
    expect(divider).to_have_attribute("aria-valuenow", "99")
    page.keyboard.press("PageDown")
    expect(divider).to_have_attribute("aria-valuenow", "89")
    expect(divider).to_have_attribute("aria-valuetext", "89% original, 11% result")
    # ...and by mouse: a click puts it there, a drag moves it.
    frame = page.get_by_test_id("compare-frame").bounding_box()
    assert frame is not None
    middle_y = frame["y"] + frame["height"] / 2
    page.mouse.click(frame["x"] + frame["width"] * 0.25, middle_y)
    expect(divider).to_have_attribute("aria-valuenow", "25")
    page.mouse.down()
    page.mouse.move(frame["x"] + frame["width"] * 0.75, middle_y, steps=5)
    page.mouse.up()
    expect(divider).to_have_attribute("aria-valuenow", "75")
    # The original is clipped to the divider: 75 % of it shows.
    clip = page.locator(".compare-before").evaluate("(el) => el.style.clipPath")
    assert clip == "inset(0px 25% 0px 0px)", clip

    # The result becomes the new source; the same-size mask stays for another pass.
    page.get_by_role("button", name="Keep editing the result").click()
    expect(page.get_by_text(re.compile(rf"^[0-9a-f-]{{36}}\.png · {width}×{height} px$"))).to_be_visible()
    expect(_coverage(page)).to_have_text(text)


def test_outpaint_by_dragging_and_typing_then_upscale(
    page: Page, login: Callable[..., None], axe: Axe, screenshot: Shot, tmp_path: Path
) -> None:
    width, height = 128, 96
    source = _test_image(tmp_path / "small.png", width, height)
    login(page, "outpaint@example.com", tier="pro")
    _open_editor(page, tmp_path / "small.png")

    page.get_by_role("radio", name="Outpaint").check()
    right = page.get_by_role("spinbutton", name="Right")
    left = page.get_by_role("spinbutton", name="Left")
    expect(right).to_have_value("256")  # the default: extend to the right
    # Drag the left edge outwards by ~40 image pixels: it snaps to steps of 8.
    handle = page.get_by_test_id("outpaint-handle-left").bounding_box()
    stage = page.get_by_role("application", name=re.compile("Outpaint canvas"))
    image_box = stage.locator(".editor-image").bounding_box()
    assert handle is not None and image_box is not None
    scale = image_box["width"] / width
    hx, hy = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    page.mouse.move(hx, hy)
    page.mouse.down()
    page.mouse.move(hx - 40 * scale, hy, steps=4)
    page.mouse.up()
    expect(left).to_have_value("40")
    # The same numbers by typing (the keyboard way).
    right.fill("64")
    left.fill("32")
    page.get_by_role("spinbutton", name="Top").fill("0")
    expect(page.get_by_text("New size: 224×96 px")).to_be_visible()
    axe(page)
    screenshot(page, "editor-outpaint")

    page.get_by_label("Prompt", exact=True).fill("more of the same pattern")
    _fewest_steps(page)
    page.get_by_role("button", name="Outpaint", exact=True).click()
    expect(page.get_by_role("slider", name="Before and after divider")).to_be_visible(timeout=JOB_TIMEOUT_MS)
    result = _download(page, tmp_path / "outpainted.png")
    assert result.shape == (96, 224, 3)
    # The original sits untouched at (left, top) = (32, 0).
    assert np.array_equal(result[:, 32 : 32 + width], source)
    axe(page)

    # Upscale the same upload x2.
    page.get_by_role("radio", name="Upscale").check()
    page.get_by_role("radio", name=re.compile(r"×2")).check()
    page.get_by_role("button", name="Upscale", exact=True).click()
    divider = page.get_by_role("slider", name="Before and after divider")
    expect(page.get_by_text(f"{width * 2}×{height * 2} px", exact=True)).to_be_visible(timeout=JOB_TIMEOUT_MS)
    assert _download(page, tmp_path / "upscaled.png").shape == (height * 2, width * 2, 3)
    expect(divider).to_be_visible()

    # A stored image opens in the editor by its id (the gallery's "Edit" link).
    href = page.get_by_role("link", name="Open in the gallery").get_attribute("href")
    assert href and href.startswith("/gallery/")
    image_id = href.removeprefix("/gallery/")
    page.goto(f"/images/edit?image={image_id}")
    expect(page.get_by_text(f"{image_id}.png · {width * 2}×{height * 2} px")).to_be_visible(timeout=15_000)
    expect(page.get_by_role("application", name=re.compile("canvas"))).to_be_visible()


def test_uploads_are_checked_before_sending_and_server_refusals_are_shown(
    page: Page, login: Callable[..., None], axe: Axe, tmp_path: Path
) -> None:
    login(page, "uploads@example.com", tier="pro")
    page.goto("/images/edit")
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url) if "/api/v1/image/" in request.url else None)
    picker = page.get_by_test_id("image-file-input")

    (tmp_path / "anim.gif").write_bytes(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
    picker.set_input_files(str(tmp_path / "anim.gif"))
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("This file type is not supported.")
    expect(alert).to_contain_text("this looks like image/gif")
    axe(page)

    _test_image(tmp_path / "tiny.png", 32, 48)
    picker.set_input_files(str(tmp_path / "tiny.png"))
    expect(alert).to_contain_text("32×48 has a side shorter than 64 px.")

    (tmp_path / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(11 * 1024 * 1024))
    picker.set_input_files(str(tmp_path / "big.png"))
    expect(alert).to_contain_text("The file is too large.")
    assert sent == [], "a refused file reached the server"

    # A valid image, and a prompt the server's safety filter refuses: the error shows by the
    # button and the prompt is still there.
    _test_image(tmp_path / "ok.png", 128, 128)
    picker.set_input_files(str(tmp_path / "ok.png"))
    page.get_by_role("radio", name="Image to image").check()
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("a decapitated statue")
    page.get_by_role("button", name="Transform").click()
    refusal = page.locator(".editor-side").get_by_role("alert")
    expect(refusal).to_contain_text("Blocked by the safety filter")
    expect(prompt).to_have_value("a decapitated statue")
    axe(page)


def test_mask_tools_work_from_the_keyboard(page: Page, login: Callable[..., None], tmp_path: Path) -> None:
    _test_image(tmp_path / "keys.png", 200, 200)
    login(page, "keys@example.com", tier="pro")
    _open_editor(page, tmp_path / "keys.png")

    # Inpainting with nothing masked is refused before sending.
    page.get_by_label("Prompt", exact=True).fill("anything")
    page.get_by_role("button", name="Inpaint", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Paint the area to repaint")

    # Brush cursor: arrows move it, holding Space paints along the way.
    canvas = page.get_by_role("application", name=re.compile("Mask canvas"))
    canvas.focus()
    page.keyboard.down(" ")
    for _ in range(6):
        page.keyboard.press("ArrowRight")
    page.keyboard.up(" ")
    first = _coverage(page).inner_text()
    assert "% of the image will be repainted" in first
    # E switches to the eraser; Space erases at the cursor.
    page.keyboard.press("e")
    expect(page.get_by_role("button", name="Eraser")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("b")
    expect(page.get_by_role("button", name="Brush")).to_have_attribute("aria-pressed", "true")
    # Zoom keys.
    zoom = page.get_by_label("Zoom level")
    before = zoom.inner_text()
    page.keyboard.press("+")
    expect(zoom).not_to_have_text(before)
    page.keyboard.press("0")
    expect(zoom).to_have_text(before)

    # The numeric rectangle: left half.
    page.get_by_text("Mask a rectangle by numbers").click()
    page.get_by_role("button", name="Clear mask").click()
    expect(_coverage(page)).to_contain_text("Nothing is masked yet")
    for name, value in (("Left (px)", "0"), ("Top (px)", "0"), ("Width (px)", "100"), ("Height (px)", "200")):
        page.get_by_label(name).fill(value)
    page.get_by_role("button", name="Mask rectangle").click()
    expect(_coverage(page)).to_have_text("50.0 % of the image will be repainted.")
    page.get_by_label("Width (px)").fill("50")
    page.get_by_role("button", name="Invert mask").click()
    expect(_coverage(page)).to_have_text("50.0 % of the image will be repainted.")
    page.get_by_role("button", name="Erase rectangle").click()
    expect(_coverage(page)).to_have_text(
        "50.0 % of the image will be repainted."
    )  # nothing there after invert
    page.get_by_label("Left (px)").fill("100")
    page.get_by_role("button", name="Erase rectangle").click()
    expect(_coverage(page)).to_have_text("25.0 % of the image will be repainted.")

    # Undo walks back through those steps; only 10 are kept.
    undo = page.get_by_role("button", name="Undo")
    undo.click()
    expect(_coverage(page)).to_have_text("50.0 % of the image will be repainted.")
    for _ in range(12):
        page.get_by_role("button", name="Invert mask").click()
    for _ in range(10):
        undo.click()
    expect(undo).to_be_disabled()
    page.get_by_role("button", name="Redo").click()
    expect(page.get_by_role("button", name="Redo")).to_be_enabled()


def test_touch_paints_and_pinch_zooms_on_a_phone(
    phone_page: Page, login: Callable[..., None], axe: Axe, screenshot: Shot, tmp_path: Path
) -> None:
    page = phone_page
    _test_image(tmp_path / "phone.png", 256, 256)
    login(page, "phone@example.com", tier="pro")
    _open_editor(page, tmp_path / "phone.png")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360, "the page scrolls sideways"
    axe(page)
    screenshot(page, "editor-phone")

    # Real touch input through the DevTools protocol: Chromium turns it into pointer events.
    touch = page.context.new_cdp_session(page)
    canvas = page.get_by_test_id("editor-viewport")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    def send(kind: str, *points: tuple[float, float]) -> None:
        touch.send(
            "Input.dispatchTouchEvent",
            {"type": kind, "touchPoints": [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]},
        )

    send("touchStart", (cx - 60, cy))
    for step in range(1, 13):
        send("touchMove", (cx - 60 + step * 10, cy))
    send("touchEnd")
    expect(_coverage(page)).to_contain_text("% of the image will be repainted")
    painted = _coverage(page).inner_text()

    # Two fingers spreading apart zoom in and paint nothing.
    zoom = page.get_by_label("Zoom level")
    before = int(zoom.inner_text().rstrip("%"))
    send("touchStart", (cx - 20, cy + 40), (cx + 20, cy + 40))
    for step in range(1, 9):
        send("touchMove", (cx - 20 - step * 8, cy + 40), (cx + 20 + step * 8, cy + 40))
    send("touchEnd")
    expect(zoom).not_to_have_text(f"{before}%")
    assert int(zoom.inner_text().rstrip("%")) > before
    expect(_coverage(page)).to_have_text(painted)
