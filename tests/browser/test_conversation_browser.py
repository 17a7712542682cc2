"""What a person sees in Chromium when they work on a conversation: regenerate and switch
alternates, edit and resend, continue a stopped answer, images for vision models, the
settings panel and the defaults page, maths."""

import base64
import json

import pytest
from playwright.sync_api import expect

from tests.fake_ollama import Reply

pytestmark = pytest.mark.browser

ANSWER = "[data-role=assistant]"
QUESTION = "[data-role=user]"
PROMPT = "textarea[name=prompt]"
# A 1x1 transparent PNG as Pillow writes it: uploads are re-encoded (chat/images.py), and
# this one comes out byte for byte the same, so tests can compare what is stored and sent.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPhfDwACggF/FjslngAAAABJRU5ErkJggg=="
)
TITLE_PROMPT = "Write a short title"  # chat/titles.py names a conversation after its first answer


def send(page, text: str) -> None:
    page.fill(PROMPT, text)
    page.press(PROMPT, "Enter")


def answer_with(fake, text) -> None:
    """Every chat request from now on gets `text` (the automatic title request too, which
    would otherwise take a queued reply meant for an answer)."""
    fake.default_reply = Reply(content=text)


def answers_sent(fake) -> list[dict]:
    """The /api/chat bodies Ollama received for answers (not for titles)."""
    return [
        body
        for body in fake.chat_requests()
        if not str(body["messages"][-1].get("content", "")).startswith(TITLE_PROMPT)
    ]


def turns(body: dict) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in body["messages"]]


def wait_complete(page, locator) -> None:
    expect(locator).to_have_attribute("data-status", "complete", timeout=10_000)


def png_file(tmp_path, name="dot.png"):
    path = tmp_path / name
    path.write_bytes(PNG)
    return str(path)


# --- regenerate, alternates, edit, continue ----------------------------------------------


def test_regenerate_keeps_the_first_answer_as_an_alternate(page, signed_up, fake):
    answer_with(fake, "First answer.")
    send(page, "Name a colour")
    answer = page.locator(ANSWER)
    wait_complete(page, answer)
    expect(answer).to_contain_text("First answer.")
    expect(answer.locator("[data-testid=alternate-count]")).to_be_hidden()

    answer_with(fake, "Second answer.")
    answer.locator("[data-testid=regenerate]").click()
    expect(answer).to_contain_text("Second answer.")
    wait_complete(page, answer)
    expect(answer).to_have_count(1)
    expect(answer).not_to_contain_text("First answer.")
    expect(answer.locator("[data-testid=alternate-count]")).to_have_text("2/2")
    assert turns(answers_sent(fake)[-1]) == [("user", "Name a colour")]

    # The first answer is still there, one click away.
    answer.locator("[data-testid=alternate-prev]").click()
    expect(answer).to_contain_text("First answer.")
    expect(answer.locator("[data-testid=alternate-count]")).to_have_text("1/2")
    expect(answer.locator("[data-testid=alternate-prev]")).to_be_disabled()

    # The next question follows the branch on screen.
    answer_with(fake, "Because.")
    send(page, "Why?")
    expect(page.locator(ANSWER)).to_have_count(2)
    wait_complete(page, page.locator(ANSWER).last)
    expect(page.locator(ANSWER).last).to_contain_text("Because.")
    assert turns(answers_sent(fake)[-1]) == [
        ("user", "Name a colour"),
        ("assistant", "First answer."),
        ("user", "Why?"),
    ]

    # The server remembers the branch; the other one is still reachable after a reload.
    page.reload()
    first = page.locator(ANSWER).first
    expect(first).to_contain_text("First answer.")
    expect(page.locator(QUESTION)).to_have_count(2)
    first.locator("[data-testid=alternate-next]").click()
    expect(first).to_contain_text("Second answer.")
    expect(page.locator(QUESTION)).to_have_count(1)  # "Why?" belongs to the other branch
    assert page.js_errors == []


def test_a_second_tab_follows_branch_changes(page, signed_up, fake):
    answer_with(fake, "First answer.")
    send(page, "Name a colour")
    wait_complete(page, page.locator(ANSWER))
    other = page.context.new_page()
    other.goto(page.url)
    expect(other.locator(ANSWER)).to_contain_text("First answer.")

    # A regenerate in one tab replaces the answer in the other.
    answer_with(fake, "Second answer.")
    page.locator(ANSWER).locator("[data-testid=regenerate]").click()
    expect(other.locator(ANSWER)).to_have_count(1)
    expect(other.locator(ANSWER)).to_contain_text("Second answer.")
    wait_complete(other, other.locator(ANSWER))
    expect(other.locator(f"{ANSWER} [data-testid=alternate-count]")).to_have_text("2/2")

    # The first tab goes back to the first answer (no frame for that) and asks again: the
    # other tab was showing another branch, so it fetches the one the server now shows.
    page.locator(ANSWER).locator("[data-testid=alternate-prev]").click()
    expect(page.locator(ANSWER)).to_contain_text("First answer.")
    answer_with(fake, "Blue.")
    send(page, "Another?")
    expect(other.locator(QUESTION)).to_have_count(2)
    expect(other.locator(ANSWER).first).to_contain_text("First answer.")
    expect(other.locator(ANSWER).last).to_contain_text("Blue.")
    wait_complete(other, other.locator(ANSWER).last)
    assert other.locator(ANSWER).count() == 2
    assert page.js_errors == []


def test_edit_and_resend_keeps_the_old_question_as_an_alternate(page, signed_up, fake):
    answer_with(fake, "It is Paris.")
    send(page, "Capital of Frnace?")
    wait_complete(page, page.locator(ANSWER))

    answer_with(fake, "Paris, definitely.")
    question = page.locator(QUESTION)
    question.locator("[data-testid=edit]").click()
    editor = question.locator("textarea[name=edit]")
    expect(editor).to_have_value("Capital of Frnace?")
    editor.fill("Capital of France?")
    editor.press("Enter")

    expect(question).to_have_count(1)
    expect(question).to_contain_text("Capital of France?")
    expect(question.locator("[data-testid=alternate-count]")).to_have_text("2/2")
    answer = page.locator(ANSWER)
    expect(answer).to_contain_text("Paris, definitely.")
    wait_complete(page, answer)
    expect(answer).to_have_count(1)
    assert turns(answers_sent(fake)[-1]) == [("user", "Capital of France?")]

    # The original question and its answer are the other alternate.
    question.locator("[data-testid=alternate-prev]").click()
    expect(question).to_contain_text("Capital of Frnace?")
    expect(page.locator(ANSWER)).to_contain_text("It is Paris.")
    assert page.js_errors == []


def test_a_refused_edit_keeps_the_edited_text(page, signed_up, fake):
    answer_with(fake, "Hi.")
    send(page, "Hello")
    wait_complete(page, page.locator(ANSWER))
    fake.default_reply = Reply(content=[f" w{i}" for i in range(200)], delay=0.05)
    send(page, "Count")
    expect(page.locator(ANSWER).last).to_have_attribute("data-status", "streaming")

    question = page.locator(QUESTION).first
    question.locator("[data-testid=edit]").click()
    question.locator("textarea[name=edit]").fill("Hello again")
    question.locator("[data-testid=edit-send]").click()
    expect(page.locator("[data-testid=notice]")).to_contain_text("still being written")
    expect(question.locator("textarea[name=edit]")).to_have_value("Hello again")
    page.click("[data-testid=stop]")
    expect(page.locator(ANSWER).last).to_have_attribute("data-status", "stopped")


def test_continue_a_stopped_answer(page, signed_up, fake):
    fake.default_reply = Reply(content=[f" word{i}" for i in range(300)], delay=0.05)
    send(page, "Count slowly")
    answer = page.locator(ANSWER)
    expect(answer).to_contain_text("word5")
    expect(answer.locator("[data-testid=continue]")).to_be_hidden()  # not while streaming
    page.click("[data-testid=stop]")
    expect(answer).to_have_attribute("data-status", "stopped")
    assert fake.wait_for_disconnect(timeout=3)
    expect(answer.locator(".msg-error")).to_contain_text("Stopped")
    partial = answer.locator(".msg-body").inner_text().strip()
    assert partial.startswith("word0") and "word299" not in partial

    answer_with(fake, " and the rest.")
    answer.locator("[data-testid=continue]").click()
    wait_complete(page, answer)
    expect(answer).to_have_count(1)  # the same answer, longer
    expect(answer.locator(".msg-body")).to_have_text(partial + " and the rest.")
    expect(answer.locator(".msg-error")).to_have_count(0)
    expect(answer.locator("[data-testid=continue]")).to_be_hidden()
    # Ollama got the partial answer last, to continue from.
    last = answers_sent(fake)[-1]["messages"]
    assert last[0] == {"role": "user", "content": "Count slowly"}
    assert last[-1]["role"] == "assistant"
    assert last[-1]["content"].strip() == partial

    page.reload()
    expect(page.locator(ANSWER).locator(".msg-body")).to_have_text(partial + " and the rest.")
    assert page.js_errors == []


def test_a_continued_answer_keeps_its_thinking(page, signed_up, fake):
    fake.default_reply = Reply(
        thinking="Counting needs care.", content=[f" n{i}" for i in range(300)], delay=0.03
    )
    page.select_option("select[name=model]", "qwen3:latest")
    send(page, "Count")
    answer = page.locator(ANSWER)
    expect(answer).to_contain_text("n5")
    page.keyboard.press("Escape")
    expect(answer).to_have_attribute("data-status", "stopped")

    answer_with(fake, " done.")
    answer.locator("[data-testid=continue]").click()
    wait_complete(page, answer)
    thinking = answer.locator("details.thinking")
    expect(thinking).to_have_count(1)
    expect(thinking).to_contain_text("Counting needs care.")
    expect(thinking).not_to_have_attribute("open", "")  # closed once the answer is there
    expect(thinking.locator("summary")).not_to_have_text("Thinking…")
    expect(answer.locator(".msg-body")).to_contain_text("done.")
    assert answers_sent(fake)[-1]["messages"][-1]["role"] == "assistant"


def test_a_busy_ollama_is_explained_while_the_answer_waits(page, signed_up, fake):
    fake.busy = True
    answer_with(fake, "Finally.")
    send(page, "Hello?")
    expect(page.locator("#connection")).to_contain_text("waits in line")
    fake.busy = False
    answer = page.locator(ANSWER)
    expect(answer).to_contain_text("Finally.", timeout=10_000)
    expect(page.locator("#connection")).to_be_empty()


# --- images -------------------------------------------------------------------------------


def test_an_image_goes_to_a_vision_model_and_stays_in_the_history(page, signed_up, fake, tmp_path):
    expect(page.locator("select[name=model] option", has_text="llava:latest")).to_have_count(1)
    page.select_option("select[name=model]", "llava:latest")
    page.set_input_files("input[type=file][name=image]", png_file(tmp_path))
    tray = page.locator("#attachments")
    expect(tray.locator("img")).to_have_count(1)
    expect(tray.locator(".attachment.uploading")).to_have_count(0)
    expect(page.locator("[data-testid=vision-notice]")).to_be_hidden()

    answer_with(fake, "A single dot.")
    send(page, "What is this?")
    question = page.locator(QUESTION)
    expect(question.locator(".msg-images img")).to_have_count(1)
    expect(tray.locator("img")).to_have_count(0)
    wait_complete(page, page.locator(ANSWER))
    sent = answers_sent(fake)[-1]
    assert sent["model"] == "llava:latest"
    assert sent["messages"][-1]["content"] == "What is this?"
    assert sent["messages"][-1]["images"] == [base64.b64encode(PNG).decode()]

    # After a reload the server renders the thumbnail, and the image loads.
    page.reload()
    image = page.locator(f"{QUESTION} .msg-images img")
    expect(image).to_have_count(1)
    page.wait_for_function(
        "() => { const i = document.querySelector('.msg-images img'); "
        "return i && i.complete && i.naturalWidth === 1; }"
    )
    assert "/attachments/" in image.get_attribute("src")
    assert page.js_errors == []


def test_a_model_without_vision_says_so_before_sending(page, signed_up, fake, tmp_path):
    page.select_option("select[name=model]", "llama3.2:latest")
    page.set_input_files("input[type=file][name=image]", png_file(tmp_path))
    notice = page.locator("[data-testid=vision-notice]")
    expect(notice).to_contain_text("can't see images")
    send_button = page.locator("[data-testid=send]")
    expect(send_button).to_be_disabled()
    send(page, "What is this?")
    expect(page.locator(QUESTION)).to_have_count(0)
    expect(page.locator(PROMPT)).to_have_value("What is this?")

    page.select_option("select[name=model]", "llava:latest")
    expect(notice).to_be_hidden()
    expect(send_button).to_be_enabled()
    page.select_option("select[name=model]", "llama3.2:latest")
    expect(notice).to_be_visible()
    page.click("[data-testid=remove-image]")
    expect(notice).to_be_hidden()
    expect(send_button).to_be_enabled()
    assert answers_sent(fake) == []

    # Pasting and dropping attach too.
    page.evaluate(
        """([bytes]) => {
            const file = () => new File([new Uint8Array(bytes)], "shot.png", {type: "image/png"});
            const pasted = new DataTransfer();
            pasted.items.add(file());
            document.querySelector("textarea[name=prompt]").dispatchEvent(
                new ClipboardEvent("paste", {clipboardData: pasted, bubbles: true, cancelable: true}));
            const dropped = new DataTransfer();
            dropped.items.add(file());
            const chat = document.querySelector("section.chat");
            for (const type of ["dragenter", "dragover", "drop"]) {
                chat.dispatchEvent(new DragEvent(type, {dataTransfer: dropped, bubbles: true, cancelable: true}));
            }
        }""",
        [list(PNG)],
    )
    expect(page.locator("#attachments img")).to_have_count(2)
    expect(page.locator("#attachments .attachment.uploading")).to_have_count(0)
    expect(notice).to_be_visible()  # still llama3.2
    for _ in range(2):
        page.locator("[data-testid=remove-image]").first.click()
    expect(page.locator("#attachments img")).to_have_count(0)

    # Only images are accepted, before anything is uploaded.
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an image")
    page.set_input_files("input[type=file][name=image]", str(text_file))
    expect(page.locator("[data-testid=notice]")).to_contain_text("only PNG, JPEG, GIF and WebP")
    expect(page.locator("#attachments img")).to_have_count(0)


# --- settings ----------------------------------------------------------------------------


def test_the_settings_panel_changes_what_ollama_receives(page, signed_up, fake):
    answer_with(fake, "Hi.")
    send(page, "Hello")
    wait_complete(page, page.locator(ANSWER))

    page.click("[data-testid=settings]")
    form = page.locator("form#settings-form")
    expect(form).to_be_visible()
    form.locator("[name=system_prompt]").fill("Answer in JSON.")
    form.locator("[name=temperature]").fill("0.2")
    form.locator("[name=num_ctx]").fill("8192")
    form.locator("[name=stop]").fill("END\n###")
    form.locator("[name=keep_alive]").fill("10m")
    form.locator("[name=think]").select_option("false")
    form.locator("[name=format]").select_option("json")
    form.locator("[data-testid=save-settings]").click()
    status = form.locator("[data-testid=settings-status]")
    expect(status).to_contain_text("Saved")

    answer_with(fake, '{"ok": true}')
    send(page, "Again")
    expect(page.locator(ANSWER)).to_have_count(2)
    wait_complete(page, page.locator(ANSWER).last)
    body = answers_sent(fake)[-1]
    assert body["options"]["temperature"] == 0.2
    assert body["options"]["num_ctx"] == 8192
    assert body["options"]["stop"] == ["END", "###"]
    assert body["keep_alive"] == "10m"
    assert body["think"] is False
    assert body["format"] == "json"
    assert body["messages"][0] == {"role": "system", "content": "Answer in JSON."}

    # Out of range: refused, the field says why, nothing changes.
    form.locator("[name=temperature]").fill("70")
    form.locator("[data-testid=save-settings]").click()
    error = form.locator(".field[data-field=temperature] .errorlist")
    expect(error).to_contain_text("less than or equal to 5")
    expect(status).to_contain_text("Temperature")
    expect(form.locator("[name=temperature]")).to_have_attribute("aria-invalid", "true")

    # A JSON schema: its box shows only for that format; broken JSON is refused.
    schema_field = form.locator("[name=format_schema]")
    expect(schema_field).to_be_hidden()
    form.locator("[name=temperature]").fill("0.2")
    form.locator("[name=format]").select_option("schema")
    schema_field.fill('{"type": "object",')
    form.locator("[data-testid=save-settings]").click()
    expect(form.locator(".field[data-field=format_schema] .errorlist")).to_contain_text("JSON")
    expect(form.locator(".errorlist")).to_have_count(1)  # the temperature error is gone
    schema = '{"type": "object", "properties": {"ok": {"type": "boolean"}}}'
    schema_field.fill(schema)
    form.locator("[data-testid=save-settings]").click()
    expect(status).to_contain_text("Saved")
    send(page, "Once more")
    expect(page.locator(ANSWER)).to_have_count(3)
    wait_complete(page, page.locator(ANSWER).last)
    assert answers_sent(fake)[-1]["format"] == json.loads(schema)

    page.reload()
    page.click("[data-testid=settings]")
    expect(page.locator("form#settings-form [name=temperature]")).to_have_value("0.2")
    expect(page.locator("form#settings-form [name=format]")).to_have_value("schema")
    expect(page.locator("form#settings-form [name=stop]")).to_have_value("END\n###")
    page.keyboard.press("Escape")
    expect(page.locator("#settings-panel")).to_be_hidden()
    assert page.js_errors == []


def test_defaults_apply_to_new_chats_and_the_panel_covers_a_phone(page, signed_up, fake):
    page.click("[data-testid=defaults-link]")
    page.wait_for_url("**/settings/defaults/")
    form = page.locator("form#settings-form")
    form.locator("[name=temperature]").fill("0.5")
    form.locator("[name=keep_alive]").fill("-1")
    form.locator("[name=num_predict]").fill("-7")
    form.locator("[data-testid=save-settings]").click()
    expect(form.locator(".field[data-field=num_predict] .errorlist")).to_be_visible()
    form.locator("[name=num_predict]").fill("256")
    form.locator("[data-testid=save-settings]").click()
    expect(form.locator("[data-testid=settings-status]")).to_contain_text("Saved")
    expect(form.locator(".errorlist")).to_have_count(0)

    page.goto("/")
    page.set_viewport_size({"width": 390, "height": 800})
    page.click("[data-testid=settings]")
    panel = page.locator("#settings-panel")
    expect(panel.locator("[name=temperature]")).to_have_value("0.5")
    box = panel.bounding_box()
    assert box["width"] == pytest.approx(390, abs=1)
    page.click("[data-testid=close-settings]")
    expect(panel).to_be_hidden()

    answer_with(fake, "Hi.")
    send(page, "Hello")
    wait_complete(page, page.locator(ANSWER))
    body = answers_sent(fake)[-1]
    assert body["options"]["temperature"] == 0.5
    assert body["options"]["num_predict"] == 256
    assert body["keep_alive"] == -1


# --- maths and copying -------------------------------------------------------------------


def test_maths_render_with_katex_and_a_broken_formula_shows_its_source(page, signed_up, fake):
    source = (
        "Area: $x^2$, inline code `$not maths$`, and\n\n"
        "$$\\frac{a}{b}$$\n\n"
        "Broken: $\\frac{<b>x</b>$ and prices stay text: $5 and $10."
    )
    fake.push_reply(Reply(content=[source]))
    send(page, "Some maths")
    answer = page.locator(ANSWER)
    wait_complete(page, answer)
    expect(answer.locator(".msg-body math")).to_have_count(2)
    expect(answer.locator(".math-display math")).to_have_count(1)
    expect(answer.locator("code", has_text="$not maths$")).to_have_count(1)
    error = answer.locator(".math-error")
    expect(error).to_have_text("\\frac{<b>x</b>")
    assert error.locator("b").count() == 0
    expect(answer).to_contain_text("prices stay text: $5 and $10.")

    # Copy gives the answer's Markdown source.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    answer.locator("[data-testid=copy-message]").click()
    expect(answer.locator("[data-testid=copy-message]")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == source

    page.reload()
    answer = page.locator(ANSWER)
    expect(answer.locator(".msg-body math")).to_have_count(2)
    expect(answer.locator(".math-error")).to_have_text("\\frac{<b>x</b>")
    assert page.js_errors == []


def test_a_long_conversation_opens_at_its_end_and_shows_earlier_messages_on_demand(
    page, signed_up, app_env
):
    import subprocess
    import sys

    from tests.browser.conftest import ROOT

    seed = (
        "from django.contrib.auth.models import User\n"
        "from chat.models import Conversation, Message\n"
        f"owner = User.objects.get(username={signed_up!r})\n"
        "c = Conversation.objects.create(owner=owner, model='llama3.2', title='Long one')\n"
        "parent = None\n"
        "for i in range(400):\n"
        "    parent = Message.objects.create(conversation=c, parent=parent,\n"
        "        role='user' if i % 2 == 0 else 'assistant', content=f'line {i}')\n"
        "c.current_leaf = parent\n"
        "c.save()\n"
        "print(c.uuid)\n"
    )
    uuid = (
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", seed],
            cwd=ROOT,
            env=app_env,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    page.goto(f"/c/{uuid}/")
    expect(page.locator("article.msg").last).to_contain_text("line 399")
    shown = page.locator("article.msg").count()
    assert shown < 400
    page.click("[data-testid=show-earlier]")
    expect(page.locator("article.msg")).to_have_count(min(400, 2 * shown))
    page.click("[data-testid=show-earlier]")
    expect(page.locator("article.msg")).to_have_count(400)
    expect(page.locator("article.msg").first).to_contain_text("line 0")
    expect(page.locator("[data-testid=show-earlier]")).to_have_count(0)
    assert page.js_errors == []
