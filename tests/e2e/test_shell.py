"""The app shell and public pages: navigation, keyboard, 360 px phones, About, CSP, deep links."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import LiveServer

Axe = Callable[..., Any]
Shot = Callable[[Page, str], None]


def test_about_shows_version_models_licence_and_terms_signed_out(
    page: Page, live_server: LiveServer, axe: Axe, screenshot: Shot
) -> None:
    page.goto("/about")
    expect(page.get_by_role("heading", level=1)).to_have_text("About Fimum AI")
    version = httpx.get(f"{live_server.url}/healthz").json()["version"]
    expect(page.get_by_role("region", name="This installation")).to_contain_text(version)
    models = page.get_by_role("table", name="Installed image models and their licences")
    expect(models.get_by_role("row", name=re.compile("Base model"))).to_contain_text("demo: images are noise")

    terms = page.get_by_role("region", name="Terms of use")
    expect(terms).to_contain_text("including commercially")
    expect(terms).to_contain_text("to provide medical advice and medical results interpretation")
    screenshot(page, "about")

    page.get_by_text("Full text of the CreativeML Open RAIL++-M").click()
    text = page.get_by_role("region", name="CreativeML Open RAIL++-M, full text")
    expect(text).to_contain_text("Attachment A Use Restrictions")
    expect(text).to_contain_text("Licensor claims no rights in the Output You generate")
    axe(page)

    # The API docs are the server's pages, not client routes (Swagger UI's scripts come from a CDN,
    # which this test machine cannot reach: check the link and the page the server gives).
    expect(page.get_by_role("link", name="Interactive API reference (Swagger UI)")).to_have_attribute(
        "href", "/docs"
    )
    assert "swagger-ui" in httpx.get(f"{live_server.url}/docs").text


def test_keyboard_skip_link_and_focus_on_navigation(page: Page, login: Callable[..., None]) -> None:
    login(page, "keyboard@example.com")
    page.goto("/account")
    # Tab only once the session check and the lazy page are done: a Tab pressed during the loading
    # screen lands nowhere.
    expect(page.locator("main h1")).to_be_visible()
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()

    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="About").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/about$"))
    expect(page.locator("main")).to_be_focused()  # a route change moves focus to the new page
    expect(page).to_have_title("About Fimum AI · Fimum AI")
    expect(nav.get_by_role("link", name="About")).to_have_attribute("aria-current", "page")


def test_a_360px_phone_gets_a_menu_and_no_sideways_scrolling(
    phone_page: Page, login: Callable[..., None], axe: Axe, screenshot: Shot
) -> None:
    page = phone_page
    login(page, "phone@example.com")
    page.goto("/account")
    expect(page.get_by_role("region", name="API keys")).to_be_visible()  # the page is rendered
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    screenshot(page, "phone-account")
    menu.tap()
    expect(menu).to_have_attribute("aria-expanded", "true")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav).to_be_visible()
    axe(page)
    nav.get_by_role("link", name="About").tap()
    expect(page).to_have_url(re.compile(r"/about$"))
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_role("region", name="Terms of use")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    axe(page)


def test_unknown_pages(page: Page, axe: Axe) -> None:
    page.goto("/no/such/page")
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(page.get_by_text("/no/such/page")).to_be_visible()
    axe(page)


def test_strict_csp_blocks_injected_inline_script(browser: Browser, live_server: LiveServer) -> None:
    response = httpx.get(f"{live_server.url}/gallery/some-id")
    assert response.status_code == 200 and '<div id="root">' in response.text
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-frame-options"] == "DENY"

    # Not the `page` fixture: this test causes a CSP violation on purpose.
    context = browser.new_context(base_url=live_server.url)
    try:
        page = context.new_page()
        violations: list[str] = []
        page.on(
            "console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None
        )
        page.goto("/about")
        expect(page.get_by_role("heading", level=1)).to_have_text("About Fimum AI")
        page.evaluate(
            """() => {
                const script = document.createElement('script');
                script.textContent = 'window.__injected = true';
                document.body.appendChild(script);
            }"""
        )
        page.wait_for_timeout(200)
        assert page.evaluate("window.__injected") is None
        assert violations, "the browser reported no CSP violation for the inline script"
    finally:
        context.close()
