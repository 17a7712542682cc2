"""The conversation list in Chromium: rename, pin, archive, delete, search and open a hit,
keyboard shortcuts, export and re-import."""

import base64
import json
import re

import pytest
from playwright.sync_api import expect

from tests.fake_ollama import Reply

pytestmark = pytest.mark.browser

LINK = "[data-testid=conversation-link]"
# A 1x1 transparent PNG.
# A 1x1 PNG in Pillow's own encoding: stored images are re-encoded without metadata
# (chat.images), and these bytes come out of it unchanged.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR4nGNgYAAAAAMAAbitOmMAAAAASUVORK5CYII="
)


def chat(page, text: str) -> None:
    """Start a new chat with `text` and wait for the answer."""
    page.click("[data-testid=new-chat]")
    page.wait_for_url(re.compile(r"/$"))
    page.fill("textarea[name=prompt]", text)
    page.press("textarea[name=prompt]", "Enter")
    page.wait_for_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    expect(page.locator("[data-role=assistant]").last).to_have_attribute("data-status", "complete")


def menu(page, title: str, action: str) -> None:
    item = page.locator("li.conv-item", has=page.locator(LINK, has_text=title))
    item.hover()
    item.locator("[data-testid=conversation-menu]").click()
    page.click(f"#conv-menu [data-testid={action}]")


def test_rename_pin_archive_and_delete_from_the_list(page, signed_up, fake):
    chat(page, "Tell me about cats")
    chat(page, "Tell me about dogs")
    links = page.locator(LINK)
    expect(links.first).to_have_text("Tell me about dogs")

    # Rename inline: Enter saves, the tab title follows, a reload keeps it.
    menu(page, "Tell me about dogs", "rename")
    page.fill("[data-testid=rename-input]", "Canine facts")
    page.press("[data-testid=rename-input]", "Enter")
    expect(links.first).to_have_text("Canine facts")
    expect(page).to_have_title(re.compile("^Canine facts"))
    # Esc cancels.
    menu(page, "Canine facts", "rename")
    page.fill("[data-testid=rename-input]", "Nope")
    page.press("[data-testid=rename-input]", "Escape")
    expect(links.first).to_have_text("Canine facts")

    # Pin the older one: it goes to the top, under "Pinned", and stays there.
    menu(page, "Tell me about cats", "pin")
    pinned = page.locator("section.conv-group[data-group=pinned]")
    expect(pinned.locator(LINK)).to_have_text(["Tell me about cats"])
    page.reload()
    expect(page.locator("section.conv-group").first).to_contain_text("Pinned")
    expect(links.first).to_have_text("Tell me about cats")
    expect(links.nth(1)).to_have_text("Canine facts")

    # Archive: out of the list, into the archive page.
    menu(page, "Tell me about cats", "archive")
    expect(page.locator(LINK, has_text="Tell me about cats")).to_have_count(0)
    page.click("[data-testid=archive-link]")
    expect(page.locator(LINK)).to_have_text(["Tell me about cats"])
    page.go_back()

    # Delete asks first; Cancel keeps it, Delete removes it for good.
    menu(page, "Canine facts", "delete-conversation")
    expect(page.locator("#delete-dialog")).to_contain_text("Canine facts")
    page.click("[data-testid=cancel-delete]")
    expect(links).to_have_count(1)
    menu(page, "Canine facts", "delete-conversation")
    page.click("[data-testid=confirm-delete]")
    page.wait_for_url(re.compile(r"/$"))  # it was the open conversation
    expect(page.locator(LINK)).to_have_count(0)
    expect(page.locator(".conversation-empty")).to_be_visible()
    assert page.js_errors == []


def test_search_highlights_and_opens_the_conversation_at_the_hit(page, signed_up, fake):
    fake.push_reply(Reply(content="Zebras have stripes.\n\n" + "Filler paragraph.\n\n" * 60))
    chat(page, "Tell me about zebras")
    answer_id = page.locator("[data-role=assistant]").last.get_attribute("data-id")
    chat(page, "Something else entirely")

    # "/" and Ctrl+K both focus the search box; the tooltip says so.
    search = page.locator("[data-testid=search]")
    assert "Ctrl+K" in search.get_attribute("title")
    page.locator("body").click()
    page.keyboard.press("/")
    expect(search).to_be_focused()
    page.locator("body").click()
    page.keyboard.press("Control+k")
    expect(search).to_be_focused()

    page.keyboard.type("STRIPES")
    results = page.locator("[data-testid=search-results]")
    expect(results.locator("mark")).to_have_text(["stripes"])
    expect(page.locator("#conversation-nav")).to_be_hidden()
    results.locator("a.search-snippet").click()

    page.wait_for_url(re.compile(rf"/c/[0-9a-f-]{{36}}/\?around={answer_id}#m-{answer_id}$"))
    target = page.locator(f"#m-{answer_id}")
    expect(target).to_have_class(re.compile("msg-target"))
    expect(target).to_be_in_viewport()

    # Ctrl+Shift+O: a new chat.
    page.keyboard.press("Control+Shift+O")
    page.wait_for_url(re.compile(r"/$"))
    assert page.js_errors == []


def test_export_and_import_back(page, signed_up, fake, tmp_path):
    # A question with an image, to a vision model.
    page.click("[data-testid=new-chat]")
    page.select_option("select[name=model]", "llava:latest")
    image = tmp_path / "dot.png"
    image.write_bytes(PNG)
    page.set_input_files("input[type=file][name=image]", str(image))
    expect(page.locator("#attachments .attachment.uploading")).to_have_count(0)
    expect(page.locator("#attachments img")).to_have_count(1)
    fake.push_reply(Reply(content="Paris is the capital of France."))
    page.fill("textarea[name=prompt]", "Capital of France?")
    page.press("textarea[name=prompt]", "Enter")
    page.wait_for_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    expect(page.locator("[data-role=assistant]").last).to_have_attribute("data-status", "complete")

    with page.expect_download() as markdown:
        menu(page, "Capital of France?", "export-md")
    text = open(markdown.value.path(), encoding="utf-8").read()
    assert markdown.value.suggested_filename == "capital-of-france.md"
    assert "## You\n\nCapital of France?" in text and "Paris is the capital" in text

    with page.expect_download() as everything:
        page.click("[data-testid=export-all]")
    data = json.loads(open(everything.value.path(), encoding="utf-8").read())
    assert [c["title"] for c in data["conversations"]] == ["Capital of France?"]
    [question] = [m for m in data["conversations"][0]["messages"] if m["role"] == "user"]
    assert [base64.b64decode(i["data"]) for i in question["images"]] == [PNG]

    # The Markdown export and a broken file are refused with a reason; nothing appears.
    broken = tmp_path / "broken.json"
    broken.write_text(
        '{"format": "ollama-chat", "version": 1, "conversations": [{"model": "x y"}]}'
    )
    page.click("[data-testid=import]")
    for path, says in (
        (markdown.value.path(), "Only JSON exports can be imported"),
        (str(broken), "not a valid Ollama model name"),
    ):
        page.set_input_files("input[type=file]", path)
        page.click("[data-testid=import-submit]")
        expect(page.locator("[data-testid=import-error]")).to_contain_text(says)

    # While the conversation is there, importing its export adds nothing.
    page.set_input_files("input[type=file]", everything.value.path())
    page.click("[data-testid=import-submit]")
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator(".flash")).to_contain_text("is already there")
    expect(page.locator(LINK, has_text="Capital of France?")).to_have_count(1)

    # Deleted, then imported back: the same conversation, its image included.
    menu(page, "Capital of France?", "delete-conversation")
    page.click("[data-testid=confirm-delete]")
    expect(page.locator(LINK)).to_have_count(0)
    page.click("[data-testid=import]")
    page.set_input_files("input[type=file]", everything.value.path())
    page.click("[data-testid=import-submit]")
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator(".flash")).to_contain_text("Imported 1 conversation.")
    page.locator(LINK, has_text="Capital of France?").click()
    expect(page.locator("[data-role=assistant]")).to_contain_text("Paris is the capital")
    expect(page.locator("[data-role=user] .msg-images img")).to_have_count(1)
    page.wait_for_function(
        "() => { const i = document.querySelector('.msg-images img'); "
        "return i && i.complete && i.naturalWidth === 1; }"
    )
    assert page.js_errors == []
