"""Signing in through the real login page, with codes delivered to the SMTP peer."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer


def test_sign_in_with_the_code_from_the_mail(
    page: Page, live_server: LiveServer, axe: Callable[..., Any], screenshot: Callable[[Page, str], None]
) -> None:
    page.goto("/gallery")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fgallery$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to Fimum AI")
    axe(page)
    screenshot(page, "login")

    email = "grace@example.com"
    page.get_by_label("E-mail address or phone number").fill(email)
    page.get_by_role("button", name="Send code").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your code")
    expect(page.get_by_text(f"We sent a 6-digit code to {email}")).to_be_visible()
    code_field = page.get_by_label("6-digit code")
    expect(code_field).to_be_focused()
    axe(page)
    screenshot(page, "login-code")

    code = live_server.latest_code(email, after=0)
    code_field.fill(code)
    # Auto-submit, then back to where the visitor wanted to go.
    expect(page).to_have_url(re.compile(r"/gallery$"))
    expect(page.get_by_role("navigation", name="Main").get_by_text(email)).to_be_visible()
