"""The account page: plan, today's usage and quotas, API keys (shown once, listed, revoked), sessions."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import LiveServer

Axe = Callable[..., Any]
Shot = Callable[[Page, str], None]


def test_plan_and_quotas_with_reset_times(
    page: Page, login: Callable[..., None], axe: Axe, screenshot: Shot
) -> None:
    login(page, "quota-reader@example.com", tier="free")
    page.goto("/account")
    expect(page.get_by_role("heading", level=1)).to_have_text("Account")
    plan = page.get_by_role("region", name="Plan and usage")
    expect(plan.get_by_text("quota-reader@example.com")).to_be_visible()
    expect(plan.locator(".badge-tier")).to_have_text("free")
    expect(plan.get_by_text("100 per minute")).to_be_visible()
    # Free: 5 images a day (config/models.yaml), none used yet; the reset time is shown.
    expect(plan.get_by_text("0 of 5 used")).to_be_visible()
    expect(plan.get_by_role("progressbar", name="Images used today")).to_have_attribute("value", "0")
    expect(
        plan.get_by_text(re.compile(r"5 left today; resets at \d\d:\d\d \(in \d+ (h|min)"))
    ).to_be_visible()
    expect(plan.get_by_text("Research reports")).to_be_visible()
    axe(page)
    screenshot(page, "account")


def test_pro_plan_shows_its_limits(page: Page, login: Callable[..., None]) -> None:
    login(page, "pro-user@example.com", tier="pro")
    page.goto("/account")
    plan = page.get_by_role("region", name="Plan and usage")
    expect(plan.locator(".badge-tier")).to_have_text("pro")
    expect(plan.get_by_text("0 of 100 used")).to_be_visible()
    expect(plan.get_by_text("1000 per minute")).to_be_visible()


def test_api_key_is_shown_once_works_and_can_be_revoked(
    page: Page, live_server: LiveServer, login: Callable[..., None], axe: Axe
) -> None:
    email = "keys@example.com"
    login(page, email)
    page.goto("/account")
    keys = page.get_by_role("region", name="API keys")
    expect(keys.get_by_text("You have no API keys.")).to_be_visible()

    keys.get_by_role("button", name="Create key").click()
    expect(keys.get_by_text("Give the key a name")).to_be_visible()
    keys.get_by_label("Key name").fill("laptop")
    keys.get_by_role("button", name="Create key").click()
    secret = keys.get_by_label("New API key")
    expect(secret).to_have_value(re.compile(r"^fim_"))
    key = secret.input_value()
    expect(keys.get_by_text("it is shown only once")).to_be_visible()
    row = keys.get_by_role("row", name=re.compile("laptop"))
    expect(row).to_be_visible()
    expect(row).not_to_contain_text(key)  # the list shows the prefix only
    axe(page)

    # The key is real: the API accepts it as this user.
    me = httpx.get(f"{live_server.url}/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200 and me.json()["user"]["email"] == email

    # Shown once: gone after Done, and after a reload.
    keys.get_by_role("button", name="Done").click()
    expect(keys.get_by_label("New API key")).to_have_count(0)
    page.reload()
    expect(page.get_by_role("row", name=re.compile("laptop"))).to_be_visible()
    assert key not in page.content()

    # Revoke, with a confirmation that can be cancelled.
    page.get_by_role("button", name="Revoke laptop").click()
    dialog = page.get_by_role("dialog", name='Revoke the key "laptop"?')
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    axe(page)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    page.get_by_role("button", name="Revoke laptop").click()
    dialog.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_role("row", name=re.compile("laptop"))).to_have_count(0)
    expect(page.get_by_text("You have no API keys.")).to_be_visible()
    refused = httpx.get(f"{live_server.url}/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 401


def test_sign_out_everywhere_ends_other_sessions(
    browser: Browser, page: Page, live_server: LiveServer, login: Callable[..., None]
) -> None:
    email = "two-laptops@example.com"
    login(page, email)
    other_context = browser.new_context(base_url=live_server.url)
    try:
        other = other_context.new_page()
        login(other, email)
        other.goto("/account")
        expect(other.get_by_role("heading", level=1)).to_have_text("Account")

        page.goto("/account")
        page.get_by_role("button", name="Sign out everywhere").click()
        page.get_by_role("dialog", name="Sign out everywhere?").get_by_role(
            "button", name="Sign out everywhere"
        ).click()
        expect(page).to_have_url(re.compile(r"/login"))

        # The other browser's session is over too: its next visit needs a new code.
        other.reload()
        expect(other).to_have_url(re.compile(r"/login\?next=%2Faccount$"))
    finally:
        other_context.close()


def test_a_free_user_at_the_daily_limit_sees_when_it_resets(
    page: Page, live_server: LiveServer, login: Callable[..., None], axe: Axe
) -> None:
    email = "busy-free@example.com"
    key = live_server.api_key(email, tier="free")
    headers = {"Authorization": f"Bearer {key}"}
    # Five images (the Free day) reserved by one queued batch; a sixth is refused with a reset time.
    batch = {"prompt": "a lighthouse at dusk", "batch_size": 5, "steps": 20, "async": True}
    accepted = httpx.post(f"{live_server.url}/api/v1/image/generate", json=batch, headers=headers)
    assert accepted.status_code == 202, accepted.text
    refused = httpx.post(
        f"{live_server.url}/api/v1/image/generate", json=batch | {"batch_size": 1}, headers=headers
    )
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "quota_exceeded"

    login(page, email)
    page.goto("/account")
    plan = page.get_by_role("region", name="Plan and usage")
    expect(plan.get_by_text("5 of 5 used")).to_be_visible()
    expect(
        plan.get_by_text(re.compile(r"Limit reached\. It resets at \d\d:\d\d \(in \d+ (h|min)"))
    ).to_be_visible()
    axe(page)
