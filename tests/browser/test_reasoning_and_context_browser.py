"""What a person sees in Chromium when the template opened the thinking block (the stream
holds only `</think>`), and when a conversation overflows the model's context window."""

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
    fake.push_reply(
        Reply(content=["Okay, the user asks", " something.\n</think>\n\n", FINAL], delay=0.8)
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
