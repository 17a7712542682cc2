"""What a person sees in Chromium: sign up, chat, streaming, reload, stop, history, XSS."""

import re
import time

import pytest
from playwright.sync_api import expect

from tests.fake_ollama import Reply

pytestmark = pytest.mark.browser

ANSWER = "[data-role=assistant]"


def slow_reply(count: int, delay: float = 0.05) -> Reply:
    return Reply(content=[f" word{i}" for i in range(count)], delay=delay)


def send(page, text: str) -> None:
    page.fill("textarea[name=prompt]", text)
    page.press("textarea[name=prompt]", "Enter")


def test_sign_up_chat_reload_stop_and_find_it_again(page, signed_up, fake):
    expect(page.locator("select[name=model] option", has_text="llama3.2:latest")).to_have_count(1)
    fake.push_reply(slow_reply(60))
    send(page, "Tell me a long story")

    answer = page.locator(ANSWER).last
    expect(answer).to_have_attribute("data-status", "streaming")
    expect(page.locator("[data-role=user]").last).to_contain_text("Tell me a long story")
    expect(page.locator("textarea[name=prompt]")).to_have_value("")
    # The answer appears progressively, not all at once.
    expect(answer).to_contain_text("word3")
    first = len(answer.inner_text())
    expect(answer).to_contain_text("word12")
    assert len(answer.inner_text()) > first
    assert "word59" not in answer.inner_text()

    # A reload mid-answer shows the text so far and continues live.
    assert re.search(r"/c/[0-9a-f-]{36}/$", page.url)
    page.reload()
    answer = page.locator(ANSWER).last
    expect(answer).to_have_attribute("data-status", "streaming")
    expect(answer).to_contain_text("word59", timeout=10_000)
    expect(answer).to_have_attribute("data-status", "complete")
    expect(answer).to_contain_text("tokens/s")
    text = answer.inner_text()
    assert text.count("word30") == 1  # nothing doubled across the reload

    # Stop mid-answer keeps the partial text.
    fake.push_reply(slow_reply(200))
    send(page, "Another one, please")
    answer = page.locator(ANSWER).nth(1)
    expect(answer).to_contain_text("word5")
    page.click("[data-testid=stop]")
    expect(answer).to_have_attribute("data-status", "stopped")
    assert fake.wait_for_disconnect(timeout=3)
    stopped_text = answer.inner_text()
    assert "word199" not in stopped_text
    expect(page.locator("[data-testid=stop]")).to_be_hidden()

    # Later: open the conversation from the list and see the whole history.
    page.click("[data-testid=new-chat]")
    page.locator("[data-testid=conversation-link]", has_text="Tell me a long story").click()
    expect(page.locator("[data-role=user]")).to_have_count(2)
    expect(page.locator(ANSWER).first).to_contain_text("word59")
    expect(page.locator(ANSWER).nth(1)).to_have_attribute("data-status", "stopped")
    expect(page.locator(ANSWER).nth(1)).to_contain_text("word5")
    assert page.js_errors == []


def test_model_markup_is_shown_as_text_and_runs_nothing(page, signed_up, fake):
    fake.push_reply(
        Reply(
            content=[
                "Look: ",
                '<img src=x onerror="window.__pwned=1">',
                " and ",
                "<script>window.__pwned=2</script>",
                " [click](javascript:window.__pwned=3)",
                "\n\n```python\nprint('hi')\n```\n",
            ]
        )
    )
    send(page, "Show me some HTML")
    answer = page.locator(ANSWER).last
    expect(answer).to_have_attribute("data-status", "complete")
    expect(answer).to_contain_text('<img src=x onerror="window.__pwned=1">')
    expect(answer).to_contain_text("<script>window.__pwned=2</script>")
    assert answer.locator("img").count() == 0
    assert answer.locator("script").count() == 0
    for link in answer.locator("a").all():
        assert not (link.get_attribute("href") or "").startswith("javascript:")
    assert page.evaluate("window.__pwned") is None
    # The code block is highlighted and has a copy button.
    expect(answer.locator("pre code")).to_contain_text("print('hi')")
    expect(
        answer.locator(".code-block").get_by_role("button", name=re.compile("copy", re.I))
    ).to_have_count(1)

    # The same after a reload, when the server renders the saved text.
    page.reload()
    answer = page.locator(ANSWER).last
    expect(answer).to_contain_text('<img src=x onerror="window.__pwned=1">')
    assert answer.locator("img").count() == 0
    time.sleep(0.2)
    assert page.evaluate("window.__pwned") is None


def test_thinking_is_shown_apart_and_stats_under_the_answer(page, signed_up, fake):
    fake.push_reply(
        Reply(content="The answer is 4.", thinking="Two plus two makes four.", delay=0.02),
        model="qwen3",
    )
    page.select_option("select[name=model]", "qwen3:latest")
    send(page, "What is 2+2?")
    answer = page.locator(ANSWER).last
    expect(answer).to_have_attribute("data-status", "complete")
    thinking = answer.locator("details.thinking")
    expect(thinking).to_have_count(1)
    expect(thinking).to_contain_text("Two plus two makes four.")
    expect(answer).to_contain_text("The answer is 4.")
    expect(answer).to_contain_text("tokens/s")


def test_a_missing_model_and_a_refused_send_are_explained_and_lose_nothing(page, signed_up, fake):
    fake.remove_model("llama3.2:latest")
    page.reload()
    page.evaluate(
        "() => { const s = document.querySelector('select[name=model]');"
        " const o = new Option('llama3.2', 'llama3.2'); s.add(o); s.value = 'llama3.2'; }"
    )
    send(page, "Hello?")
    answer = page.locator(ANSWER).last
    expect(answer).to_have_attribute("data-status", "failed")
    expect(answer).to_contain_text("not installed")
    expect(page.locator("[data-role=user]").last).to_contain_text("Hello?")

    # While an answer is being written a second message is refused and stays in the box.
    fake.push_reply(slow_reply(100), model="qwen3")
    page.select_option("select[name=model]", "qwen3:latest")
    send(page, "First")
    expect(page.locator(ANSWER).last).to_have_attribute("data-status", "streaming")
    page.fill("textarea[name=prompt]", "Second, too soon")
    page.click("[data-testid=send]")
    expect(page.locator("[data-testid=notice]")).to_contain_text("still being written")
    expect(page.locator("textarea[name=prompt]")).to_have_value("Second, too soon")
    page.keyboard.press("Escape")
    expect(page.locator(ANSWER).last).to_have_attribute("data-status", "stopped")


def test_ollama_down_is_explained_on_the_page(page, signed_up, fake):
    fake.stop()
    try:
        page.reload()
        expect(page.locator("[data-testid=notice]")).to_contain_text("not reachable")
        send(page, "Anyone there?")
        answer = page.locator(ANSWER).last
        expect(answer).to_have_attribute("data-status", "failed")
        expect(answer).to_contain_text("not reachable")
    finally:
        fake.start()


def test_shift_enter_makes_a_newline_and_enter_sends(page, signed_up, fake):
    page.fill("textarea[name=prompt]", "line one")
    page.press("textarea[name=prompt]", "Shift+Enter")
    page.type("textarea[name=prompt]", "line two")
    expect(page.locator("textarea[name=prompt]")).to_have_value("line one\nline two")
    expect(page.locator("[data-role=user]")).to_have_count(0)
    page.press("textarea[name=prompt]", "Enter")
    expect(page.locator("[data-role=user]")).to_have_count(1)
    expect(page.locator(ANSWER).last).to_have_attribute("data-status", "complete")
    assert fake.last_chat()["messages"][-1]["content"] == "line one\nline two"
