"""The gallery in a real Chromium against a real server: images made through the API with the tiny model,
infinite scroll over the cursor API, the detail view, downloads and deleting with a confirm.

Seeding costs one image-to-image job of a few images on the tiny model (the cheapest way to real
gallery rows: 1 denoising step). The page size is rewritten to 1 on the wire (the server pages with
its real cursors), so three images give three pages instead of the 24 a page holds.

The server allows 3 sign-in codes per address per 15 minutes, so the seeded user signs in only
twice in this file (pages; detail) and each test covers several steps.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from playwright.sync_api import Page, Route, expect

from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.slow  # one image job on the tiny model (CPU): 10-60 s depending on load

SEEDED_IMAGES = 3
PAGE_SIZE_ON_THE_WIRE = 1
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Seeded:
    email: str
    token: str
    prompt: str
    ids: list[str]  # newest first, as the gallery lists them


def _api(server: LiveServer, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        server.url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _api_key(server: LiveServer, email: str, tier: str) -> str:
    """A personal API key for the user (created with its tier), as `fimum users api-key create` makes one."""
    from fimum_ai.accounts import api_keys
    from fimum_ai.accounts.identifiers import parse_identifier
    from fimum_ai.accounts.users import find_by_identifier
    from fimum_ai.db.session import Database
    from fimum_ai.settings import Settings

    server.set_tier(email, tier)
    database = Database(Settings(data_dir=server.data_dir))
    try:
        with database.session() as session, session.begin():
            user = find_by_identifier(session, parse_identifier(email))
            assert user is not None
            _, key = api_keys.create_key(session, user.id, "e2e gallery seeding")
            return key
    finally:
        database.dispose()


def _gallery_ids(server: LiveServer, token: str) -> list[str]:
    status, body = _api(server, token, "GET", "/api/v1/images?limit=100")
    assert status == 200, body
    return [item["id"] for item in body["items"]]


@pytest.fixture(scope="module")
def seeded(live_server: LiveServer) -> Seeded:
    from fimum_ai.images.requests import EXAMPLE_IMAGE_BASE64

    email = "gallery-owner@example.com"
    token = _api_key(live_server, email, "pro")
    prompt = "a lighthouse at dusk <b>not bold</b> & friends"  # markup must show as text
    status, body = _api(
        live_server,
        token,
        "POST",
        "/api/v1/image/edit",
        {
            "prompt": prompt,
            "negative_prompt": "blurry",
            "image_base64": EXAMPLE_IMAGE_BASE64,
            "strength": 0.05,
            "steps": 20,
            "batch_size": SEEDED_IMAGES,
            "seed": 1234,
        },
    )
    assert status == 200, f"{body}\n{live_server.output()}"
    ids = _gallery_ids(live_server, token)
    assert len(ids) == SEEDED_IMAGES
    return Seeded(email, token, prompt, ids)


@pytest.fixture
def small_pages(page: Page) -> Iterator[list[dict[str, list[str]]]]:
    """Ask the server for 2 images per gallery page; yields the query of every gallery request."""
    seen: list[dict[str, list[str]]] = []

    def rewrite(route: Route) -> None:
        parts = urlsplit(route.request.url)
        query = parse_qs(parts.query)
        query["limit"] = [str(PAGE_SIZE_ON_THE_WIRE)]
        seen.append(query)
        route.continue_(url=urlunsplit(parts._replace(query=urlencode(query, doseq=True))))

    page.route(re.compile(r"/api/v1/images\?"), rewrite)
    yield seen


def _tiles(page: Page) -> Any:
    return page.get_by_role("list", name="My images, newest first").get_by_role("listitem")


def _tile_ids(page: Page) -> list[str]:
    hrefs = _tiles(page).get_by_role("link").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    return [href.rsplit("/", 1)[1] for href in hrefs]


def test_a_new_user_sees_the_empty_state(
    page: Page, login: Callable[..., None], axe: Callable[..., Any]
) -> None:
    login(page, "gallery-newcomer@example.com")
    page.goto("/gallery")
    expect(page.get_by_role("heading", name="No images yet")).to_be_visible()
    expect(page.get_by_role("link", name="Create an image")).to_have_attribute("href", "/images")
    expect(page.get_by_role("list", name="My images, newest first")).to_have_count(0)
    axe(page)


def test_scrolling_and_the_keyboard_load_every_page_through_the_cursor_api(
    page: Page,
    live_server: LiveServer,
    login: Callable[..., None],
    seeded: Seeded,
    small_pages: list[dict[str, list[str]]],
    axe: Callable[..., Any],
    screenshot: Callable[[Page, str], None],
) -> None:
    login(page, seeded.email, tier="pro")
    expected = _gallery_ids(live_server, seeded.token)
    page.goto("/gallery")
    expect(_tiles(page).first).to_be_visible()
    page.get_by_text("That is all of your images.").scroll_into_view_if_needed()
    expect(page.get_by_text("That is all of your images.")).to_be_visible()
    expect(_tiles(page)).to_have_count(len(expected))
    assert _tile_ids(page) == expected  # newest first, no duplicates, none missing

    # The first request has no cursor; each later one continues from the previous page's last image.
    cursors = [query.get("cursor", [None])[0] for query in small_pages]
    pages = -(-len(expected) // PAGE_SIZE_ON_THE_WIRE)
    assert cursors[0] is None
    assert cursors[1:pages] == [expected[i * PAGE_SIZE_ON_THE_WIRE - 1] for i in range(1, pages)]

    # Thumbnails carry their size (no layout shift) and are real decoded images with the prompt as alt text.
    first = _tiles(page).first.get_by_role("img")
    expect(first).to_have_attribute("width", "256")
    expect(first).to_have_attribute("height", "256")
    expect(first).to_have_attribute("alt", seeded.prompt)
    for image in _tiles(page).locator("img").all():
        image.scroll_into_view_if_needed()
        expect(image).to_have_js_property("complete", True)
        assert image.evaluate("img => img.naturalWidth") == 256
    axe(page)
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "gallery")

    # Without IntersectionObserver nothing loads on its own: the button is the way on.
    page.add_init_script("delete window.IntersectionObserver")
    total = len(expected)
    page.goto("/gallery")
    expect(_tiles(page)).to_have_count(PAGE_SIZE_ON_THE_WIRE)
    load_more = page.get_by_role("button", name="Load more images")

    # Reached by Tab from the last image, pressed with Enter.
    _tiles(page).last.get_by_role("link").focus()
    page.keyboard.press("Tab")
    expect(load_more).to_be_focused()
    page.keyboard.press("Enter")
    expect(_tiles(page)).to_have_count(min(total, 2 * PAGE_SIZE_ON_THE_WIRE))
    expect(page.get_by_test_id("announcer-polite")).to_have_text(
        f"{PAGE_SIZE_ON_THE_WIRE} more image{'s' if PAGE_SIZE_ON_THE_WIRE > 1 else ''} loaded, "
        f"{2 * PAGE_SIZE_ON_THE_WIRE} shown."
    )
    while page.get_by_role("button", name="Load more images").count():
        page.get_by_role("button", name="Load more images").press("Enter")
        page.wait_for_function(
            "() => !document.querySelector('.gallery-footer [aria-busy=\"true\"]')", polling=50
        )
    expect(_tiles(page)).to_have_count(total)
    expect(page.get_by_text("That is all of your images.")).to_be_visible()


def test_detail_view_downloads_and_delete_with_confirm(
    page: Page,
    live_server: LiveServer,
    login: Callable[..., None],
    seeded: Seeded,
    axe: Callable[..., Any],
    screenshot: Callable[[Page, str], None],
) -> None:
    login(page, seeded.email, tier="pro")
    ids = _gallery_ids(live_server, seeded.token)
    newest = ids[0]
    page.goto("/gallery")
    _tiles(page).first.get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"/gallery/{newest}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Image details")

    # → and ← step through the loaded list: to the older image and back.
    expect(page.get_by_role("link", name="Older image")).to_have_attribute("href", f"/gallery/{ids[1]}")
    page.keyboard.press("ArrowRight")
    expect(page).to_have_url(re.compile(rf"/gallery/{ids[1]}$"))
    expect(page.get_by_role("link", name="Newer image")).to_be_visible()
    page.keyboard.press("ArrowLeft")
    expect(page).to_have_url(re.compile(rf"/gallery/{newest}$"))
    expect(page.get_by_role("link", name="Newer image")).to_have_count(0)

    # The prompt is shown as typed (its markup as text), with every parameter it was made with.
    expect(page.get_by_text(seeded.prompt, exact=True)).to_be_visible()
    expect(page.get_by_text("blurry", exact=True)).to_be_visible()
    metadata = page.locator("dl.gallery-meta")
    rows = dict(
        zip(
            metadata.locator("dt").all_inner_texts(),
            metadata.locator("dd").all_inner_texts(),
            strict=True,
        )
    )
    _, image = _api(live_server, seeded.token, "GET", f"/api/v1/images/{newest}")
    assert rows["Mode"] == "Image to image"
    assert rows["Seed"] == str(image["seed"])
    assert rows["Steps"] == "20"
    assert rows["Guidance (CFG)"] == "7.5"
    assert rows["Strength"] == "0.05"
    assert rows["Scheduler"] == image["metadata"]["scheduler"]
    assert rows["Size"] == f"{image['width']} × {image['height']} px"
    assert rows["Model"].startswith(image["metadata"]["model_name"])
    assert rows["Demo model"].startswith("Yes")
    assert re.fullmatch(r"[\d.]+ (ms|s)|\d+ min \d+ s", rows["Generation time"])
    assert {"Device", "Created"} <= rows.keys()

    # The full image replaces the thumbnail once fetched (with the session's token).
    full = page.locator("figure.gallery-figure img")
    expect(full).to_have_attribute("width", str(image["width"]))
    page.wait_for_function(
        "w => { const i = document.querySelector('figure.gallery-figure img');"
        " return i && i.complete && i.naturalWidth === w; }",
        arg=image["width"],
    )
    expect(page.get_by_role("link", name="Regenerate")).to_have_attribute("href", f"/images?from={newest}")
    expect(page.get_by_role("link", name="Open in editor")).to_have_attribute(
        "href", f"/images/edit?image={newest}"
    )
    axe(page)
    screenshot(page, "gallery-detail")

    with page.expect_download() as png:
        page.get_by_role("button", name="Download PNG").click()
    assert png.value.suggested_filename == f"fimum-{newest}.png"
    data = Path(png.value.path()).read_bytes()
    assert data.startswith(PNG_MAGIC)
    with page.expect_download() as webp:
        page.get_by_role("button", name="Download WebP").click()
    assert webp.value.suggested_filename == f"fimum-{newest}.webp"
    data = Path(webp.value.path()).read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"

    # Delete: back to the gallery (client-side, so the loaded list is kept), the oldest image.
    before = _gallery_ids(live_server, seeded.token)
    victim = before[-1]  # the oldest: the last tile, the cursor of no page after it
    page.get_by_role("link", name="← All images").click()
    expect(_tiles(page)).to_have_count(len(before))
    _tiles(page).last.get_by_role("link").click()  # client-side: the loaded list is kept meanwhile
    expect(page).to_have_url(re.compile(rf"/gallery/{victim}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Image details")

    # Cancel keeps it.
    page.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete this image?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()  # Enter never destroys by accident
    axe(page)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert victim in _gallery_ids(live_server, seeded.token)

    # Confirming deletes it on the server and in the kept gallery list.
    page.get_by_role("button", name="Delete").click()
    dialog.get_by_role("button", name="Delete image").click()
    expect(page).to_have_url(re.compile(r"/gallery$"))
    expect(page.get_by_test_id("announcer-polite")).to_have_text("Image deleted.")
    expect(_tiles(page)).to_have_count(len(before) - 1)
    assert victim not in _tile_ids(page)
    assert _gallery_ids(live_server, seeded.token) == [i for i in before if i != victim]
    status, _ = _api(live_server, seeded.token, "GET", f"/api/v1/images/{victim}")
    assert status == 404

    # Its old address now says so instead of failing.
    page.goto(f"/gallery/{victim}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Image not found")
    expect(page.get_by_role("link", name="Back to the gallery")).to_be_visible()

    # On a 360 px phone screen: two columns, nothing wider than the screen.
    page.set_viewport_size({"width": 360, "height": 740})
    page.get_by_role("link", name="Back to the gallery").click()
    tiles = _tiles(page)
    expect(tiles).to_have_count(len(before) - 1)
    first, second = tiles.nth(0).bounding_box(), tiles.nth(1).bounding_box()
    assert first and second
    assert first["y"] == second["y"] and second["x"] >= first["x"] + first["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    axe(page)
    screenshot(page, "gallery-phone")
