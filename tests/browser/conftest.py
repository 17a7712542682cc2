"""A real Daphne serving the app (own SQLite file), the Ollama test double, and a real
Chromium driven by Playwright."""

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("daphne did not start listening")


@pytest.fixture(scope="session")
def app_env(_fake_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "browser-test-secret-" + "b" * 40,
        "DEBUG": "false",
        "DATABASE_URL": f"sqlite:///{tmp / 'app.sqlite3'}",
        "STATIC_ROOT": str(tmp / "static"),
        "MEDIA_DIR": str(tmp / "media"),
        "OLLAMA_URL": _fake_server.url,
        "SIGNUP_MODE": "open",
        "MESSAGES_PER_MINUTE": "1000",
        # A title request after each first answer would take the next scripted reply.
        "AUTO_TITLES": "false",
        "REDIS_URL": "",
    }
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        subprocess.run(
            [sys.executable, "manage.py", *command, "--verbosity", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
    return env


@contextmanager
def daphne(env: dict, *options: str):
    """A Daphne process serving the app with `env` (and extra Daphne `options`, e.g.
    "--proxy-headers"); yields its base URL."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            *options,
            "config.asgi:application",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def live_url(app_env):
    with daphne(app_env) as url:
        yield url


@pytest.fixture(scope="package")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (./test.sh does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def fake(_fake_server):
    """The double the Daphne process talks to, reset for each test."""
    _fake_server.reset()
    yield _fake_server
    _fake_server.reset()


@pytest.fixture
def page(browser, live_url):
    context = browser.new_context(base_url=live_url)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    yield page
    context.close()


_counter = iter(range(1, 10_000))


@pytest.fixture
def signed_up(page):
    """A fresh account, signed up and logged in through the page."""
    username = f"user{next(_counter)}_{int(time.time() * 1000) % 100000}"
    page.goto("/signup/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password1]", "a-long-password-42")
    page.fill("input[name=password2]", "a-long-password-42")
    page.click("button[type=submit]")
    page.wait_for_url("**/")
    return username
