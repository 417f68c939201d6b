"""Signing in through the real login page, with codes delivered to the SMTP peer."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer

Axe = Callable[..., Any]
Shot = Callable[[Page, str], None]


def _ask_for_code(page: Page, email: str) -> None:
    page.get_by_label("E-mail address or phone number").fill(email)
    page.get_by_role("button", name="Send code").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your code")


def test_sign_in_with_the_code_from_the_mail(
    page: Page, live_server: LiveServer, axe: Axe, screenshot: Shot
) -> None:
    page.goto("/gallery")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fgallery$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to Fimum AI")
    axe(page)
    screenshot(page, "login")

    email = "grace@example.com"
    _ask_for_code(page, email)
    expect(page.get_by_text(f"We sent a 6-digit code to {email}")).to_be_visible()
    code_field = page.get_by_label("6-digit code")
    expect(code_field).to_be_focused()
    # The first resend waits for the cool-down, counting down.
    expect(page.get_by_role("button", name=re.compile(r"Send a new code \(in 0:[0-3]\d\)"))).to_be_disabled()
    axe(page)
    screenshot(page, "login-code")

    code = live_server.latest_code(email, after=0)
    code_field.fill(code)
    # Auto-submit, then back to where the visitor wanted to go.
    expect(page).to_have_url(re.compile(r"/gallery$"))
    expect(page.get_by_role("navigation", name="Main").get_by_text(email)).to_be_visible()

    # The session survives a reload (silent refresh with the HttpOnly cookie)...
    page.reload()
    expect(page).to_have_url(re.compile(r"/gallery$"))
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    # ...and ends with Sign out, also after a reload.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto("/account")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Faccount$"))


def test_a_pasted_message_fills_the_code_and_signs_in(page: Page, live_server: LiveServer) -> None:
    email = "paste@example.com"
    page.goto("/login")
    _ask_for_code(page, email)
    code = live_server.latest_code(email, after=0)
    # A real paste event carrying the mail's text, spaces and words included.
    page.get_by_label("6-digit code").focus()
    page.evaluate(
        """(text) => {
            const data = new DataTransfer();
            data.setData('text/plain', text);
            const input = document.activeElement;
            const paste = { clipboardData: data, bubbles: true, cancelable: true };
            input.dispatchEvent(new ClipboardEvent('paste', paste));
        }""",
        f"Your Fimum AI sign-in code is: {code[:3]} {code[3:]}",
    )
    expect(page).to_have_url(re.compile(r"/images$"))


def test_a_wrong_code_says_so_and_the_right_one_still_works(
    page: Page, live_server: LiveServer, axe: Axe
) -> None:
    email = "typo@example.com"
    page.goto("/login")
    _ask_for_code(page, email)
    code = live_server.latest_code(email, after=0)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    field = page.get_by_label("6-digit code")
    field.fill(wrong)
    alert = page.get_by_role("alert").filter(has_text="That code is not correct")
    expect(alert).to_have_text(re.compile(r"That code is not correct\. 4 attempts left\."))
    expect(field).to_have_value("")
    expect(field).to_be_focused()
    axe(page)
    field.fill(code)
    expect(page).to_have_url(re.compile(r"/images$"))


def test_resend_respects_the_servers_rate_limit(page: Page, live_server: LiveServer) -> None:
    email = "eager@example.com"
    # Two codes through the API: the page's request is the third and last of the 15-minute window.
    for _ in range(2):
        response = httpx.post(f"{live_server.url}/api/v1/auth/otp/request", json={"identifier": email})
        assert response.status_code == 202
    page.goto("/login")
    _ask_for_code(page, email)
    resend = page.get_by_role("button", name=re.compile(r"Send a new code \(in 1[45]:\d\d\)"))
    expect(resend).to_be_disabled()

    # Going back and asking again: the server refuses, the page says when to retry.
    page.get_by_role("button", name="Use a different e-mail address or phone number").click()
    page.get_by_role("button", name="Send code").click()
    expect(page.get_by_role("alert")).to_contain_text(
        re.compile(r"Too many requests\. Try again in 1[45] min")
    )
    expect(page.get_by_role("button", name=re.compile(r"Send code \(wait 1[45]:\d\d\)"))).to_be_disabled()
    # What was typed is still there.
    expect(page.get_by_label("E-mail address or phone number")).to_have_value(email)


def test_obvious_slips_are_caught_before_asking_the_server(page: Page) -> None:
    page.goto("/login")
    page.get_by_role("button", name="Send code").click()
    field = page.get_by_label("E-mail address or phone number")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_text("Enter your e-mail address or phone number.")).to_be_visible()
    field.fill("4155550123")
    page.get_by_role("button", name="Send code").click()
    expect(page.get_by_text(re.compile("international form"))).to_have_count(2)  # hint and error
