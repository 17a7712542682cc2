"""What a person sees in Chromium when the template opened the thinking block (the stream
holds only `</think>`), and when a conversation overflows the model's context window."""

import threading

import pytest
from playwright.sync_api import expect

from tests.fake_ollama import Reply

pytestmark = pytest.mark.browser

ANSWER = "[data-role=assistant]"
PROMPT = "textarea[name=prompt]"
THINKING, FINAL = "Okay, the user asks something.", "Final answer."


def send(page, text: str) -> None:
    page.fill(PROMPT, text)
    page.press(PROMPT, "Enter")


def expect_reasoning_apart(answer) -> None:
    expect(answer).to_have_attribute("data-status", "complete", timeout=10_000)
    expect(answer.locator("details.thinking .thinking-body")).to_have_text(THINKING)
    expect(answer.locator(".msg-body")).to_have_text(FINAL)
    expect(answer).not_to_contain_text("</think>")


def test_a_lone_closing_tag_moves_the_shown_text_into_the_thinking(page, signed_up, fake):
    tag_comes = threading.Event()
    fake.push_reply(
        Reply(
            content=["Okay, the user asks", " something.\n</think>\n\n", FINAL],
            delay=0.3,
            hold_after=1,
            resume=tag_comes,
        )
    )
    send(page, "What is it?")
    answer = page.locator(ANSWER).last
    # Until the tag comes, the reasoning looks like the answer and is shown as one.
    expect(answer.locator(".msg-body")).to_have_text("Okay, the user asks")
    expect(answer.locator("details.thinking")).to_have_count(0)

    # A second tab opened before the tag follows the same stream.
    other = page.context.new_page()
    other_errors = []
    other.on("pageerror", lambda exc: other_errors.append(str(exc)))
    other.goto(page.url)
    other_answer = other.locator(ANSWER).last
    expect(other_answer.locator(".msg-body")).to_contain_text("Okay, the user asks")
    tag_comes.set()

    # The tag arrives: the text moves into the thinking box, the answer starts afresh.
    expect(answer.locator("details.thinking .thinking-body")).to_have_text(THINKING)
    expect(answer.locator(".msg-body")).not_to_contain_text("Okay")
    expect(answer).to_have_attribute("data-status", "streaming")
    expect(answer.locator(".msg-body")).to_have_text(FINAL)
    expect_reasoning_apart(answer)
    expect_reasoning_apart(other_answer)

    page.reload()
    expect_reasoning_apart(page.locator(ANSWER).last)
    assert page.js_errors == [] and other_errors == []


def test_a_full_context_window_is_noted_and_the_gauge_shows_how_full(page, signed_up, fake):
    gauge = page.locator("[data-testid=context-gauge]")
    expect(gauge).to_be_hidden()  # nothing answered yet: nothing to measure

    # num_ctx 2048 for this chat (saving the settings creates it).
    page.click("[data-testid=settings]")
    form = page.locator("form#settings-form")
    form.locator("[name=num_ctx]").fill("2048")
    form.locator("[data-testid=save-settings]").click()
    expect(form.locator("[data-testid=settings-status]")).to_contain_text("Saved")
    page.click("[data-testid=close-settings]")

    fake.push_reply(Reply(content="Short.", prompt_eval_count=1000))
    send(page, "First question")
    first = page.locator(ANSWER).last
    expect(first).to_have_attribute("data-status", "complete")
    expect(first.locator("[data-testid=answer-note]")).to_have_count(0)
    expect(gauge).to_be_visible()
    expect(gauge).to_contain_text("49%")  # 1,000 + 1 of 2,048 tokens
    meter = gauge.get_by_role("meter", name="Context")
    expect(meter).to_have_attribute("max", "2048")
    expect(meter).to_have_accessible_description(
        "The last answer used 1,001 of the 2,048 tokens the model can see."
    )

    fake.push_reply(Reply(content="Another short one.", prompt_eval_count=2048))
    send(page, "Second question")
    second = page.locator(ANSWER).nth(1)
    expect(second).to_have_attribute("data-status", "complete")
    note = second.locator("[data-testid=answer-note]")
    expect(note).to_contain_text("did not see its oldest part")
    expect(note).to_contain_text("Raise num_ctx")
    expect(note).to_contain_text("2,048 tokens")
    expect(gauge).to_contain_text("100%")
    expect(meter).to_have_accessible_description(
        "The last answer filled all 2,048 tokens the model can see: the oldest messages "
        "no longer reach the model."
    )

    page.reload()
    second = page.locator(ANSWER).nth(1)
    expect(second.locator("[data-testid=answer-note]")).to_contain_text("did not see its oldest")
    expect(page.locator(ANSWER).first.locator("[data-testid=answer-note]")).to_have_count(0)
    expect(page.locator("[data-testid=context-gauge]")).to_contain_text("100%")
    expect(page.get_by_role("meter", name="Context")).to_have_attribute("value", "2051")
    assert page.js_errors == []
