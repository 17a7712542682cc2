"""A herd on the default set-up: `./run.sh` as shipped (SQLite, in-memory layer, one
Daphne, Django's real password hasher) and N people who sign up, open a new chat and send
their first message, all at the same moment. Used by tests/scale/test_herd.py (which
asserts that everyone succeeds) and on its own for the figures in docs/benchmarks.md:

    .venv/bin/python -m bench.herd               # 200 people
    .venv/bin/python -m bench.herd --people 50

Prints errors, dropped sockets and the latency of each step (p50/p95/max, seconds).
"""

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import websockets

from bench.system import free_port
from tests.fake_ollama import FakeOllama, Reply

ROOT = Path(__file__).resolve().parent.parent
ANSWER = [f" w{i}" for i in range(20)]


@dataclass
class Shipped:
    host: str  # "127.0.0.1:port"
    database: Path
    log: Path


def shipped_env(folder: Path, ollama_url: str) -> dict:
    """The environment `./run.sh` gives the app (no Redis, no other services), on a fresh
    SQLite file in `folder`, migrated; for a Daphne started with it."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "OLLAMA_URLS", "DJANGO_SETTINGS_MODULE")
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "shipped-secret-" + "h" * 40,
        "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
        "OLLAMA_URL": ollama_url,
        "MEDIA_DIR": str(folder / "media"),
        "LOG_LEVEL": "WARNING",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return env


@contextmanager
def shipped_app(folder: Path, reply: Reply | None = None):
    """One Daphne started as ./run.sh starts it, on a fresh SQLite file in `folder`, in
    front of an Ollama test double answering `reply` (20 words, 20 ms apart)."""
    ollama = FakeOllama(default_reply=reply or Reply(content=ANSWER, delay=0.02)).start()
    env = shipped_env(folder, ollama.url)
    port = free_port()
    log = folder / "daphne.log"
    with open(log, "wb") as output:
        daphne = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
            + ["config.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/login/").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or daphne.poll() is not None:
                raise RuntimeError(f"Daphne did not start: {log.read_text()}")
            time.sleep(0.1)
        yield Shipped(f"127.0.0.1:{port}", folder / "db.sqlite3", log)
    finally:
        daphne.terminate()
        daphne.wait(timeout=15)
        ollama.stop()


@dataclass
class Person:
    index: int
    problems: list[str] = field(default_factory=list)
    frames: list[dict] = field(default_factory=list)
    # Seconds from the common start: each step's end.
    signed_up: float | None = None
    chat_made: float | None = None
    first_token: float | None = None
    done: float | None = None

    @property
    def name(self) -> str:
        return f"herd{self.index:03d}"

    def text(self) -> str:
        return "".join(f.get("content", "") for f in self.frames if f["type"] == "delta")


async def _one(host: str, person: Person, go: asyncio.Event, clock) -> None:
    base = f"http://{host}"
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(600)) as client:
        page = await client.get("/signup/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        await go.wait()  # everyone presses "Sign up" at the same moment
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
        person.signed_up = clock()
        response = await client.post(
            "/c/new/",
            data={"model": "llama3.2"},
            headers={"X-CSRFToken": client.cookies["csrftoken"]},
        )
        if response.status_code != 201:
            person.problems.append(f"new chat: HTTP {response.status_code} {response.text[:200]}")
            return
        person.chat_made = clock()
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
            if first["type"] != "snapshot":
                person.problems.append(f"socket: first frame {first}")
                return
            await ws.send(json.dumps({"type": "send", "content": "Hello", "model": "llama3.2"}))
            async with asyncio.timeout(600):
                while True:
                    frame = json.loads(await ws.recv())
                    person.frames.append(frame)
                    if frame["type"] == "delta" and person.first_token is None:
                        person.first_token = clock()
                    if frame["type"] in ("done", "error"):
                        person.done = clock()
                        return
    except Exception as exc:  # a dropped or refused socket
        person.problems.append(f"socket: {exc!r}"[:300])


async def herd(host: str, count: int) -> list[Person]:
    """`count` people, each signing up, making a chat and sending, all at once."""
    people = [Person(i) for i in range(count)]
    go = asyncio.Event()
    loop = asyncio.get_running_loop()
    started = 0.0
    runs = [asyncio.create_task(_one(host, p, go, lambda: loop.time() - started)) for p in people]
    await asyncio.sleep(2 + count / 100)  # every sign-up page loaded, every form filled in
    started = loop.time()
    go.set()
    await asyncio.gather(*runs)
    return people


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, round(q * (len(values) - 1)))]  # noqa: E731
    return f"{pick(0.5):.1f} / {pick(0.95):.1f} / {values[-1]:.1f}"


def summarise(people: list[Person]) -> dict:
    """Counts of failures and the spread (p50 / p95 / max, seconds from the start) of
    each step's end."""
    complete = [p for p in people if p.frames and p.frames[-1].get("status") == "complete"]
    return {
        "people": len(people),
        "with problems": sum(1 for p in people if p.problems),
        "answers complete": len(complete),
        "signed up (s)": _spread([p.signed_up for p in people if p.signed_up is not None]),
        "chat made (s)": _spread([p.chat_made for p in people if p.chat_made is not None]),
        "first token after own chat made (s)": _spread(
            [p.first_token - p.chat_made for p in people if p.first_token is not None]
        ),
        "answer done (s)": _spread([p.done for p in people if p.done is not None]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="herd-") as folder, shipped_app(Path(folder)) as app:
        people = asyncio.run(herd(app.host, args.people))
        for key, value in summarise(people).items():
            print(f"{key:40} {value}")
        for person in people:
            if person.problems:
                print(person.name, person.problems)
        print("'database is locked' in the log:", "database is locked" in app.log.read_text())


if __name__ == "__main__":
    main()
