"""What a staff member sees on the models page in Chromium: a pull's bar moving to done,
the model in the list and in the chat's picker; load, the countdown, unload."""

import re
import subprocess
import sys

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ROOT

pytestmark = pytest.mark.browser

STAFF = "models-staff"
PASSWORD = "a-long-password-77"

# Made in the Daphne's database directly: signing up would only make the *first*
# account staff, and the chat tests may have signed up before us.
CREATE_STAFF = f"""
from django.contrib.auth.models import User
user, _ = User.objects.get_or_create(username={STAFF!r})
user.is_staff = True
user.set_password({PASSWORD!r})
user.save()
"""


@pytest.fixture(scope="module")
def staff_account(app_env):
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", CREATE_STAFF],
        cwd=ROOT,
        env=app_env,
        check=True,
    )
    return STAFF


@pytest.fixture
def staff_page(page, staff_account):
    page.goto("/login/?next=/models/")
    page.fill("input[name=username]", staff_account)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/models/")
    expect(page.locator("[data-testid=server-status]")).to_contain_text("is running")
    return page


def bar_fraction(row) -> float:
    return row.locator("progress").evaluate("bar => bar.value / bar.max")


def test_pull_a_model_watch_the_bar_then_find_it_in_the_chat(staff_page, fake):
    page = staff_page
    fake.pull_delay = 0.03
    fake.pull_steps = 20  # about two seconds in all
    expect(page.locator("#local tr[data-model='tinyllama:latest']")).to_have_count(0)

    page.fill("input[name=model]", "tinyllama")
    page.click("[data-testid=pull]")
    expect(page.locator("[data-testid=models-notice]")).to_contain_text(
        "Pulling “tinyllama:latest”"
    )
    expect(page.locator("input[name=model]")).to_have_value("")
    row = page.locator("li.pull").first
    expect(row.locator(".pull-model")).to_have_text("tinyllama:latest")
    expect(row).to_have_attribute("data-status", "running")

    # The bar moves, with percent, bytes and speed beside it.
    page.wait_for_function("() => document.querySelector('li.pull progress').value > 0")
    first = bar_fraction(row)
    expect(row.locator(".pull-numbers")).to_contain_text(re.compile(r"\d+% · .* of .*MB/s"))
    page.wait_for_function(
        "first => { const b = document.querySelector('li.pull progress');"
        " return b.value / b.max > first }",
        arg=first,
    )
    expect(row).to_have_attribute("data-status", "done", timeout=10_000)
    expect(row.locator(".pull-state")).to_have_text("Done")
    assert bar_fraction(row) == 1
    expect(row.locator(".pull-numbers")).to_have_text("100% · 40.0 MB of 40.0 MB")
    expect(row.locator("[data-testid=cancel-pull]")).to_have_count(0)

    # The installed list refreshes by itself...
    expect(page.locator("#local tr[data-model='tinyllama:latest']")).to_contain_text("40.0 MB")
    # ...the pull stays in the history after a reload...
    page.reload()
    expect(page.locator("li.pull").first).to_have_attribute("data-status", "done")
    # A name the registry does not know fails in Ollama's words (and stays failed, even
    # though the failure may reach the page before the answer to the POST does).
    page.fill("input[name=model]", "no-such-model")
    page.click("[data-testid=pull]")
    failed = page.locator("li.pull").first
    expect(failed.locator(".pull-model")).to_have_text("no-such-model:latest")
    expect(failed).to_have_attribute("data-status", "failed")
    expect(failed.locator(".pull-error")).to_have_text(
        "Could not pull “no-such-model:latest”. "
        "Ollama said: pull model manifest: file does not exist"
    )
    page.wait_for_timeout(300)
    expect(failed).to_have_attribute("data-status", "failed")
    # ...and the chat's model picker offers it.
    page.goto("/")
    expect(page.locator("select[name=model] option", has_text="tinyllama:latest")).to_have_count(1)
    assert page.js_errors == []


def test_load_watch_the_countdown_then_unload(staff_page, fake):
    page = staff_page
    expect(page.locator("[data-testid=no-running]")).to_have_text("No model is loaded right now.")

    local = page.locator("#local tr[data-model='llama3.2:latest']")
    local.locator("select[name=keep_alive]").select_option("1h")
    local.locator("[data-testid=load]").click()
    expect(page.locator("[data-testid=models-notice]")).to_contain_text("Loaded “llama3.2:latest”")
    loaded = page.locator("#running tr[data-model='llama3.2:latest']")
    expect(loaded).to_contain_text(re.compile(r"(59 min \d+ s|1 h 0 min)"))
    expect(local.locator(".badge-running")).to_have_text("loaded")
    # The countdown runs in the page.
    countdown = loaded.locator(".countdown")
    before = countdown.inner_text()
    expect(countdown).not_to_have_text(before, timeout=3000)

    # A model loaded by someone else shows up without a reload (pushed, not polled).
    httpx.post(
        f"{fake.url}/api/chat",
        json={"model": "qwen3", "messages": [], "keep_alive": -1, "stream": False},
    ).raise_for_status()
    other = page.locator("#running tr[data-model='qwen3:latest']")
    expect(other).to_contain_text("forever", timeout=6000)

    loaded.locator("[data-testid=unload]").click()
    expect(loaded).to_have_count(0)
    expect(page.locator("[data-testid=models-notice]")).to_have_text("Unloaded “llama3.2:latest”.")
    expect(local.locator(".badge-running")).to_have_count(0)
    assert fake.running_models() == ["qwen3:latest"]
    other.locator("[data-testid=unload]").click()
    expect(page.locator("[data-testid=no-running]")).to_be_visible()
    assert page.js_errors == []


def test_delete_asks_first_and_the_model_leaves_the_list(staff_page, fake):
    page = staff_page
    fake.add_model("scratch:1b", parameter_size="1B")
    page.reload()
    page.locator("#local tr[data-model='scratch:1b'] [data-testid=delete]").click()
    expect(page.locator("h1")).to_have_text("Delete scratch:1b?")
    expect(page.locator("[data-testid=conversation-count]")).to_have_text(
        "No conversation uses this model."
    )
    page.click("[data-testid=confirm-delete]")
    page.wait_for_url("**/models/")
    expect(page.locator(".flash")).to_contain_text("Deleted “scratch:1b”")
    expect(page.locator("#local tr[data-model='scratch:1b']")).to_have_count(0)
    assert page.js_errors == []
