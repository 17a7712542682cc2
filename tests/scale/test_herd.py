"""A herd on the default set-up: `./run.sh` as shipped (SQLite, in-memory layer, one
Daphne, Django's real password hasher), 200 people signing up and sending their first
message at once. Every sign-up, every new chat and every answer must succeed."""

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest
import websockets

from tests.fake_ollama import FakeOllama, Reply
from tests.scale.conftest import ROOT, _free_port

pytestmark = pytest.mark.scale

PEOPLE = 200
ANSWER = [f" w{i}" for i in range(20)]


@pytest.fixture
def shipped_app(tmp_path):
    """One Daphne as ./run.sh starts it, on a fresh SQLite file, in front of a double."""
    ollama = FakeOllama(default_reply=Reply(content=ANSWER, delay=0.02)).start()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "OLLAMA_URLS", "DJANGO_SETTINGS_MODULE")
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "herd-test-secret-" + "h" * 40,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "OLLAMA_URL": ollama.url,
        "MEDIA_DIR": str(tmp_path / "media"),
        "LOG_LEVEL": "WARNING",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    port = _free_port()
    log = open(tmp_path / "daphne.log", "wb")  # noqa: SIM115 - kept for the process
    daphne = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/login/").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, (tmp_path / "daphne.log").read_text()
        time.sleep(0.1)
    try:
        yield f"127.0.0.1:{port}", tmp_path / "db.sqlite3", tmp_path / "daphne.log"
    finally:
        daphne.terminate()
        daphne.wait(timeout=15)
        ollama.stop()


class Person:
    def __init__(self, index: int):
        self.name = f"herd{index:03d}"
        self.problems: list[str] = []
        self.frames: list[dict] = []


async def _one_person(host: str, person: Person, start: asyncio.Event) -> None:
    base = f"http://{host}"
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(600)) as client:
        page = await client.get("/signup/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        await start.wait()  # everyone presses "Sign up" at the same moment
        password = f"herd-password-{person.name}-77"
        response = await client.post(
            "/signup/",
            data={
                "username": person.name,
                "password1": password,
                "password2": password,
                "csrfmiddlewaretoken": token,
            },
            headers={"Referer": base + "/signup/"},
        )
        if response.status_code != 302:
            person.problems.append(f"sign-up: HTTP {response.status_code}")
            return
        response = await client.post(
            "/c/new/",
            data={"model": "llama3.2"},
            headers={"X-CSRFToken": client.cookies["csrftoken"]},
        )
        if response.status_code != 201:
            person.problems.append(f"new chat: HTTP {response.status_code} {response.text[:200]}")
            return
        conversation = response.json()["id"]
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    try:
        async with websockets.connect(
            f"ws://{host}/ws/conversations/{conversation}/",
            additional_headers={"Cookie": cookie, "Origin": base},
            open_timeout=None,
            ping_interval=None,
        ) as ws:
            first = json.loads(await ws.recv())
            assert first["type"] == "snapshot", first
            await ws.send(json.dumps({"type": "send", "content": "Hello", "model": "llama3.2"}))
            async with asyncio.timeout(300):
                while True:
                    frame = json.loads(await ws.recv())
                    person.frames.append(frame)
                    if frame["type"] in ("done", "error"):
                        break
    except Exception as exc:  # a dropped or refused socket
        person.problems.append(f"socket: {exc!r}"[:300])


async def test_two_hundred_sign_ups_and_first_messages_at_once_all_succeed(shipped_app):
    host, database, log = shipped_app
    people = [Person(i) for i in range(PEOPLE)]
    start = asyncio.Event()
    runs = [asyncio.create_task(_one_person(host, person, start)) for person in people]
    await asyncio.sleep(2)  # every sign-up page loaded, every form filled in
    start.set()
    await asyncio.gather(*runs)

    problems = {p.name: p.problems for p in people if p.problems}
    assert not problems, f"{len(problems)} people had trouble: {list(problems.items())[:5]}"
    for person in people:
        done = person.frames[-1]
        assert done["type"] == "done" and done["status"] == "complete", (person.name, done)
        text = "".join(f.get("content", "") for f in person.frames if f["type"] == "delta")
        assert text == "".join(ANSWER)
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM auth_user").fetchone()[0] == PEOPLE
        statuses = db.execute(
            "SELECT status, count(*) FROM chat_message WHERE role='assistant' GROUP BY status"
        ).fetchall()
    assert statuses == [("complete", PEOPLE)]
    assert "database is locked" not in log.read_text()
