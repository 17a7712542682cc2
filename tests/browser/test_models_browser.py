"""What a staff member sees on the models page in Chromium: a pull's bar moving to done,
the model in the list and in the chat's picker; load, the countdown, unload; with two
Ollama hosts, choosing one and seeing each host's changes land in the right place."""

import re
import subprocess
import sys

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ROOT, daphne
from tests.fake_ollama import FakeOllama

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


# Everything the page shows of the newest pull, each time the page changes it.
RECORD_BARS = """() => {
  window.bars = [];
  new MutationObserver(() => {
    const row = document.querySelector("li.pull");
    const bar = row?.querySelector("progress");
    if (!bar || !bar.hasAttribute("value")) return;
    window.bars.push([row.dataset.pullId, row.dataset.status, bar.value / bar.max, bar.textContent]);
  }).observe(document.getElementById("pulls"), {subtree: true, childList: true, attributes: true});
}"""


def test_the_bar_never_moves_back_while_ollama_announces_more_layers(staff_page, fake):
    page = staff_page
    # The weights, then the projector, template and params, each announced once the one
    # before is done: the bytes seen so far drop from 100 % to 87 % at the second layer.
    fake.pullable["llava:7b"] = [4_100_000_000, 624_000_000, 9_300_000, 100]
    fake.pull_delay = 0.04
    page.evaluate(RECORD_BARS)
    page.fill("input[name=model]", "llava:7b")
    page.click("[data-testid=pull]")
    row = page.locator("li.pull").first
    expect(row).to_have_attribute("data-status", "done", timeout=15_000)

    pull_id = row.get_attribute("data-pull-id")
    bars = [bar[1:] for bar in page.evaluate("window.bars") if bar[0] == pull_id]
    running = [(fraction, text) for status, fraction, text in bars if status == "running"]
    assert len(running) >= 4
    shown = [fraction for fraction, _ in running]
    assert shown == sorted(shown), f"the bar went back: {shown}"
    assert max(shown) < 1 and all(int(text.rstrip("%")) < 100 for _, text in running)
    assert bars[-1] == ["done", 1, "100%"]
    expect(row.locator(".pull-numbers")).to_have_text("100% · 4.7 GB of 4.7 GB")
    # A reload shows the saved state.
    page.reload()
    expect(page.locator("li.pull").first).to_have_attribute("data-fraction", "1")
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


# --- two Ollama hosts -----------------------------------------------------------------


@pytest.fixture(scope="module")
def host_b():
    server = FakeOllama().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def two_hosts_url(app_env, _fake_server, host_b, tmp_path_factory):
    """A second Daphne with OLLAMA_URLS = the session's double (A), then host B; its own
    database, so the two processes' pulls never meet."""
    tmp = tmp_path_factory.mktemp("two-hosts")
    env = {
        **app_env,
        "DATABASE_URL": f"sqlite:///{tmp / 'app.sqlite3'}",
        "OLLAMA_URLS": f"{_fake_server.url},{host_b.url}",
        "MODELS_POLL_SECONDS": "0.5",
    }
    for command in (["migrate", "--noinput", "--verbosity", "0"], ["shell", "-c", CREATE_STAFF]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True)
    with daphne(env) as url:
        yield url


@pytest.fixture
def b(host_b):
    host_b.reset()
    host_b.version = "0.13.0"
    host_b.remove_model("llava")
    host_b.remove_model("qwen3")
    host_b.add_model("mistral:7b", parameter_size="7B")
    yield host_b
    host_b.start()  # if a test stopped it
    host_b.reset()


def test_two_hosts_choose_one_and_each_change_lands_in_its_place(browser, two_hosts_url, fake, b):
    context = browser.new_context(base_url=two_hosts_url)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/login/?next=/models/")
    page.fill("input[name=username]", STAFF)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/models/")

    row_a = page.locator(f"#hosts tr[data-host-url='{fake.url}']")
    row_b = page.locator(f"#hosts tr[data-host-url='{b.url}']")
    expect(row_a).to_contain_text("Reachable")
    expect(row_a.locator(".host-installed")).to_have_text("3")
    expect(row_b.locator(".host-version")).to_have_text("0.13.0")
    expect(row_b.locator(".host-installed")).to_have_text("2")
    expect(row_b.locator(".host-loaded")).to_have_text("0")

    # Choose B: its lists, and every form and link acts on it.
    row_b.locator("[data-testid=host-link]").click()
    page.wait_for_url("**/models/?host=1")
    expect(page.locator("[data-testid=server-status]")).to_contain_text(
        f"Ollama 0.13.0 is running at {b.url}"
    )
    expect(page.locator("#local tr[data-model]")).to_have_count(2)
    local = page.locator("#local tr[data-model='mistral:7b']")
    local.locator("[data-testid=load]").click()
    expect(page.locator("[data-testid=models-notice]")).to_contain_text(
        f"Loaded “mistral:7b” on {b.url}"
    )
    expect(page.locator("#running tr[data-model='mistral:7b']")).to_be_visible()
    expect(row_b.locator(".host-loaded")).to_have_text("1")
    assert b.running_models() == ["mistral:7b"] and fake.running_models() == []

    # Something loads a model on A: A's row says so, B's lists stay B's.
    httpx.post(
        f"{fake.url}/api/chat",
        json={"model": "qwen3", "messages": [], "keep_alive": -1, "stream": False},
    ).raise_for_status()
    expect(row_a.locator(".host-loaded")).to_have_text("1", timeout=6000)
    expect(page.locator("#running tr[data-model]")).to_have_count(1)

    # A pull on B: named with its host, and B's list and count grow, not A's.
    b.pull_delay = 0.01
    page.fill("input[name=model]", "tinyllama")
    page.click("[data-testid=pull]")
    pull = page.locator("li.pull").first
    expect(pull.locator(".pull-meta")).to_contain_text(f"on {b.url}")
    expect(pull).to_have_attribute("data-status", "done", timeout=10_000)
    expect(page.locator("#local tr[data-model='tinyllama:latest']")).to_be_visible()
    expect(row_b.locator(".host-installed")).to_have_text("3")
    expect(row_a.locator(".host-installed")).to_have_text("3")
    assert "tinyllama:latest" not in fake.models

    # B goes down: its row and this page's status say so; A is still fine. Then it is back.
    b.stop()
    expect(row_b).to_have_attribute("data-reachable", "false", timeout=6000)
    expect(row_b.locator(".host-state")).to_contain_text("Not reachable.")
    expect(page.locator("[data-testid=server-status]")).to_contain_text(
        f"Ollama is not reachable at {b.url}"
    )
    expect(row_a).to_have_attribute("data-reachable", "true")
    b.start()
    expect(row_b).to_have_attribute("data-reachable", "true", timeout=6000)
    expect(row_b.locator(".host-installed")).to_have_text("3")
    assert errors == []
    context.close()


def test_the_picker_shows_a_model_whose_host_is_down_as_unavailable(browser, two_hosts_url, b):
    context = browser.new_context(base_url=two_hosts_url)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/login/?next=/")
    page.fill("input[name=username]", STAFF)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/")
    mistral = page.locator("select[name=model] option[value='mistral:7b']")
    expect(mistral).to_have_text("mistral:7b (7B)")  # only on B

    # B goes down: its model is out of reach for now, not missing.
    b.stop()
    page.reload()
    expect(mistral).to_have_text("mistral:7b (7B) (unavailable for now)")
    expect(page.locator("select[name=model] option[value='llama3.2:latest']")).to_have_text(
        "llama3.2:latest (3.2B)"
    )
    expect(page.locator("select[name=model] option", has_text="not installed")).to_have_count(0)
    assert errors == []
    context.close()
