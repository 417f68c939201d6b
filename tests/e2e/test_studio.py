"""The image studio (FR-UI-004) in a real Chromium against a real server on the tiny model.

- FR-TEST-008: a batch of 8 from the studio's own controls; every job shows its place, a live
  progress bar and a latent preview from the WebSocket, the live region announces each one, and all
  8 end in the gallery page.
- A Free user over the daily quota sees the limit message with the reset time, next to the button,
  the jobs that fit are queued (and can be cancelled), and nothing typed is lost.
- A prompt the content filter refuses is marked on the prompt field itself.
- axe-core on the studio idle, busy (jobs streaming) and showing errors.

Elements are found by role and accessible name, as a screen reader user would find them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

# 8 + 5 jobs of 512², 20 steps on the tiny model (CPU): 20 s to a few minutes on a loaded machine.
pytestmark = pytest.mark.slow

JOB_TIMEOUT_MS = 600_000
# Queueing several jobs while the tiny model already runs the first: slow on a loaded 2-core machine.
SUBMIT_TIMEOUT_MS = 60_000
# Every animation frame: what each job card shows (progress value, preview) and what the polite live
# region says. Records states that last a single frame, which a polling test would miss.
RECORDER = """
() => {
  const seen = {};
  const spoken = [];
  const record = () => {
    for (const card of document.querySelectorAll('li.job')) {
      const title = card.querySelector('h3')?.textContent?.trim();
      if (!title) continue;
      const entry = (seen[title] ??= { progress: [], previews: 0, positions: [] });
      const bar = card.querySelector('progress');
      if (bar && bar.hasAttribute('value')) {
        const value = Number(bar.getAttribute('value'));
        if (entry.progress.at(-1) !== value) entry.progress.push(value);
      }
      const preview = card.querySelector('img.job-preview');
      if (preview && preview.getAttribute('src') !== entry.lastPreview) {
        entry.lastPreview = preview.getAttribute('src');
        entry.previews += 1;
      }
      const position = card.querySelector('.job-progress-text')?.textContent ?? '';
      if (position.startsWith('Position') && entry.positions.at(-1) !== position) {
        entry.positions.push(position);
      }
    }
    requestAnimationFrame(record);
  };
  requestAnimationFrame(record);
  const region = document.querySelector('[data-testid="announcer-polite"]');
  new MutationObserver(() => {
    const text = region.textContent.trim();
    if (text) spoken.push(text);
  }).observe(region, { childList: true, characterData: true, subtree: true });
  window.__studio = { seen, spoken };
}
"""


def open_studio(page: Page) -> None:
    page.goto("/images")
    expect(page.get_by_role("heading", name="Image studio", level=1)).to_be_visible()
    # The style presets come from the server: the form is ready once they are there.
    expect(page.get_by_role("radio", name="Photorealistic")).to_be_visible()


def fill_small_job(page: Page, prompt: str, images: int) -> None:
    """512², 20 steps: the API's smallest size and step count, so the tiny model is quick."""
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_label("Width (px)").fill("512")
    page.get_by_label("Height (px)").fill("512")
    page.get_by_role("slider", name="Steps").fill("20")
    page.get_by_role("slider", name="Images").fill(str(images))


def queue_summary(page: Page) -> Any:
    return page.get_by_role("region", name="Queue").locator(".queue-summary")


ALL_ANNOUNCED = """() => {
  const spoken = window.__studio.spoken.join(' ');
  return [1, 2, 3, 4, 5, 6, 7, 8].every((n) => spoken.includes(`Job ${n} finished: 1 image ready.`));
}"""


# Unloaded, the 8 jobs take well under a minute; on a shared CI box they may take several.
@pytest.mark.timeout(900)
def test_batch_of_8_shows_each_jobs_progress_and_preview_and_all_reach_the_gallery(
    page: Page, login: Callable[..., None], axe: Callable[..., Any], screenshot: Callable[[Page, str], None]
) -> None:
    login(page, "batch-of-eight@example.com", tier="pro")  # Free allows 5 images a day
    open_studio(page)
    expect(page.get_by_text("Demo model: images will be random noise.")).to_be_visible()
    axe(page)  # idle
    screenshot(page, "studio")

    fill_small_job(page, "a lighthouse on a cliff at dusk", 8)
    page.evaluate(RECORDER)
    page.get_by_role("button", name="Generate 8 images").click()

    jobs = (
        page.get_by_role("list", name="Jobs, newest first")
        .get_by_role("listitem")
        .filter(has=page.get_by_role("heading", level=3))
    )
    expect(jobs).to_have_count(8, timeout=SUBMIT_TIMEOUT_MS)
    for label in range(1, 9):
        expect(page.get_by_role("heading", name=f"Job {label}", exact=True)).to_be_visible()
    # Busy: jobs streaming progress and previews.
    expect(page.get_by_role("progressbar", name=re.compile(r"Job \d progress")).first).to_be_visible()
    expect(page.get_by_text("Generating").first).to_be_visible(timeout=JOB_TIMEOUT_MS)
    preview = page.get_by_role("img", name=re.compile(r"Latent preview of job \d at step \d+ of 20"))
    expect(preview.first).to_be_visible(timeout=JOB_TIMEOUT_MS)
    axe(page)
    screenshot(page, "studio-busy")

    expect(queue_summary(page)).to_have_text("8 done", timeout=JOB_TIMEOUT_MS)
    # Announcements are gathered for up to a second: the last jobs' may still be on their way.
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_function(ALL_ANNOUNCED, timeout=10_000)
    recorded = page.evaluate("window.__studio")
    for label in range(1, 9):
        entry = recorded["seen"].get(f"Job {label}")
        assert entry, f"Job {label} was never shown: {sorted(recorded['seen'])}"
        partial = [value for value in entry["progress"] if 0 < value < 100]
        assert partial, f"Job {label} showed no progress between 0 and 100: {entry['progress']}"
        assert entry["progress"][-1] == 100, entry["progress"]
        assert entry["previews"] >= 1, f"Job {label} never showed a latent preview"
    # Each job's end was announced (several may share one announcement).
    spoken = " ".join(recorded["spoken"])
    for label in range(1, 9):
        assert f"Job {label} finished: 1 image ready." in spoken, spoken
    # Every finished card offers its result and the follow-up actions.
    expect(page.get_by_role("button", name="PNG download of job 8")).to_be_visible()
    expect(page.get_by_role("button", name="Regenerate job 1")).to_be_visible()
    screenshot(page, "studio-done")

    page.get_by_role("link", name="Gallery").click()
    gallery = page.get_by_role("list", name="My images, newest first")
    expect(gallery.get_by_role("listitem")).to_have_count(8)


def test_free_user_over_the_daily_quota_sees_the_limit_with_its_reset_time(
    page: Page, login: Callable[..., None], axe: Callable[..., Any]
) -> None:
    login(page, "free-quota@example.com", tier="free")
    open_studio(page)
    prompt = "a watercolour fox in the snow"
    fill_small_job(page, prompt, 6)
    expect(page.get_by_text(re.compile(r"^5 of 5 images left today; resets at"))).to_be_visible()
    page.get_by_role("button", name="Generate 6 images").click()

    limit = page.get_by_role("alert").filter(has_text="You have reached today's image limit.")
    expect(limit).to_be_visible(timeout=SUBMIT_TIMEOUT_MS)
    expect(limit).to_contain_text("5 of 6 images were queued; the rest were not.")
    expect(limit).to_contain_text("5 of 5 images used today.")
    expect(limit).to_contain_text(re.compile(r"The limit resets at \d{2}:\d{2} \(in \d+ (h|min|s)\b"))
    # Next to its cause: inside the form, right after the Generate button.
    expect(page.get_by_role("form", name="Image settings").get_by_role("alert")).to_contain_text(
        "image limit"
    )
    # Nothing typed is lost.
    expect(page.get_by_label("Prompt", exact=True)).to_have_value(prompt)
    expect(page.get_by_role("heading", name="Job 5", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Job 6", exact=True)).to_have_count(0)
    axe(page)

    # The queued jobs can be cancelled (the last one is still waiting behind the others).
    cancel = page.get_by_role("button", name="Cancel job 5")
    expect(cancel).to_be_enabled()
    cancel.click()
    card = page.get_by_role("listitem").filter(has=page.get_by_role("heading", name="Job 5", exact=True))
    expect(card.get_by_text("Cancelled", exact=True)).to_be_visible(timeout=JOB_TIMEOUT_MS)
    # The others too, so the suite does not spend CPU on them (one may finish meanwhile: no button).
    for label in range(1, 5):
        with contextlib.suppress(PlaywrightTimeoutError):
            page.get_by_role("button", name=f"Cancel job {label}").click(timeout=2000)


def test_a_blocked_prompt_is_marked_on_the_prompt_and_the_form_survives_a_reload(
    page: Page, login: Callable[..., None], axe: Callable[..., Any]
) -> None:
    login(page, "blocked-prompt@example.com", tier="free")
    open_studio(page)
    blocked = "a decapitated soldier, gore everywhere"
    fill_small_job(page, blocked, 1)
    page.get_by_role("checkbox", name="Bad anatomy").check()
    page.get_by_role("radio", name="Cinematic").check()
    page.get_by_role("button", name="Generate image").click()

    field = page.get_by_label("Prompt", exact=True)
    expect(field).to_have_attribute("aria-invalid", "true", timeout=SUBMIT_TIMEOUT_MS)
    expect(field).to_have_accessible_description(re.compile("blocked by the content filter"))
    expect(field).to_be_focused()
    expect(page.get_by_role("heading", name="Job 1", exact=True)).to_have_count(0)  # nothing queued
    axe(page)

    # Rewording clears the message; a reload keeps everything typed and chosen (sessionStorage).
    field.fill("a knight in shining armour")
    expect(field).not_to_have_attribute("aria-invalid", "true")
    page.reload()
    open_studio(page)
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("a knight in shining armour")
    expect(page.get_by_role("checkbox", name="Bad anatomy")).to_be_checked()
    expect(page.get_by_role("radio", name="Cinematic")).to_be_checked()
    expect(page.get_by_label("Width (px)")).to_have_value("512")
    # The preset's suggested settings moved the sliders.
    expect(page.get_by_role("slider", name="Steps")).to_have_value("40")
