"""The chat page on a server without any chat endpoint (the foundation's live server): one sentence
says how to set one up, and nothing can be sent."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, expect


def test_without_an_endpoint_the_page_says_how_to_set_one(
    page: Page, login: Callable[..., None], axe: Callable[..., Any]
) -> None:
    login(page, "chat-unconfigured@example.com")
    page.goto("/chat")
    note = page.locator(".chat-not-configured")
    expect(note).to_be_visible()
    expect(note).to_contain_text(re.compile("OPENROUTER_API_KEY|FIMUM_OPENROUTER_BASE_URL"))
    expect(page.get_by_label("Message", exact=True)).to_be_disabled()
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    axe(page)
