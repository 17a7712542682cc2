"""What a person sees when Redis restarts under the app: the page says it is reconnecting,
comes back by itself within seconds, and shows every answer whole: one whose end came
while Redis was away, and one sent meanwhile."""

import subprocess
import sys
import time

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ROOT, daphne
from tests.fake_ollama import Reply
from tests.redis_server import PrivateRedis, require_redis_server

pytestmark = pytest.mark.browser

ANSWER = "[data-role=assistant]"
WORDS = [f" word{i}" for i in range(60)]


@pytest.fixture
def redis_app(app_env, tmp_path):
    """A Daphne on a Redis of this test's own (and a database of its own: the session's
    single-process server would take this one's live answers for an earlier run's)."""
    require_redis_server()
    redis = PrivateRedis(tmp_path)
    redis.start()
    env = {**app_env, "REDIS_URL": redis.url, "DATABASE_URL": f"sqlite:///{tmp_path / 'db'}"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    try:
        with daphne(env) as url:
            yield url, redis
    finally:
        redis.stop()


def test_the_page_comes_back_after_a_redis_restart_with_every_answer_whole(
    browser, redis_app, fake
):
    url, redis = redis_app
    context = browser.new_context(base_url=url)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/signup/")
    page.fill("input[name=username]", "restarted")
    page.fill("input[name=password1]", "a-long-password-42")
    page.fill("input[name=password2]", "a-long-password-42")
    page.click("button[type=submit]")
    page.wait_for_url("**/")

    fake.push_reply(Reply(content=WORDS, delay=0.03))
    page.fill("textarea[name=prompt]", "Count for me")
    page.press("textarea[name=prompt]", "Enter")
    answer = page.locator(ANSWER).first
    expect(answer).to_contain_text("word5")

    redis.stop()
    expect(page.locator("#connection")).to_contain_text("Reconnecting")
    # Sent while Redis is away: the page keeps it and sends it once it is back.
    fake.push_reply(Reply(content=" Still here."))
    page.fill("textarea[name=prompt]", "Are you there?")
    page.press("textarea[name=prompt]", "Enter")
    time.sleep(2)  # the first answer ends meanwhile; its last frames reach no one
    redis.start()
    back = time.monotonic()

    # Back within seconds: the first answer whole (nothing doubled), the second answered.
    expect(answer).to_have_attribute("data-status", "complete", timeout=5_000)
    expect(answer).to_contain_text("word59")
    assert answer.inner_text().count("word30") == 1
    second = page.locator(ANSWER).nth(1)
    expect(second).to_contain_text("Still here.", timeout=5_000)
    expect(second).to_have_attribute("data-status", "complete")
    expect(page.locator("#connection")).to_have_text("")
    assert time.monotonic() - back < 6
    expect(page.locator("[data-role=user]")).to_have_count(2)
    assert errors == []
    context.close()
