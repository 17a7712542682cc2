"""The scaled-out set-up for real: two Daphne processes on PostgreSQL and a Redis channel
layer, in front of two Ollama test doubles.

The Redis is a redis-server of this run's own (`package_redis`), never the machine's
shared one: the processes keep global keys there (the `chat:processes` set of liveness,
the waiting line), which another test run on the same machine would share and flush.

Without PostgreSQL or the redis-server program on a developer's machine the group is
skipped with a message saying how to get them; in CI (CI=true) it fails instead, so it
can never silently not run.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.fake_ollama import FakeOllama
from tests.redis_server import PrivateRedis, require_redis_server

ROOT = Path(__file__).resolve().parents[2]
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
HOW_TO_START = (
    "The scale tests need PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth). "
    "Start it, e.g. `pg_ctlcluster 15 main start`, or run `./test.sh -m 'not scale'`."
)


def _services_missing() -> str | None:
    import psycopg

    try:
        psycopg.connect(dbname="postgres", connect_timeout=2, **PG).close()
    except Exception as exc:
        return f"PostgreSQL is not reachable ({exc})"
    return None


@pytest.fixture(scope="package")
def services_up():
    missing = _services_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing}. {HOW_TO_START}")
        pytest.skip(f"{missing}. {HOW_TO_START}")


@pytest.fixture(scope="package")
def database_url(services_up):
    import psycopg

    name = f"chat_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="package")
def hosts():
    """Two Ollama hosts."""
    first, second = FakeOllama().start(), FakeOllama().start()
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture
def ollama(hosts):
    for host in hosts:
        if host._server is None:  # a test stopped it
            host.start()
        host.reset()
    return hosts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """Two Daphne processes sharing PostgreSQL and Redis."""

    def __init__(self, env: dict, tmp: Path):
        self.env = env
        self.tmp = tmp
        self.ports = [_free_port(), _free_port()]
        self.processes: list[subprocess.Popen | None] = [None, None]

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}"

    def ws(self, index: int) -> str:
        return f"ws://127.0.0.1:{self.ports[index]}"

    def start(self, index: int) -> None:
        log = open(self.tmp / f"daphne{index}.log", "ab")  # noqa: SIM115 - kept for the process
        self.processes[index] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.ports[index]),
                "config.asgi:application",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.ports[index]), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(
            f"daphne {index} did not start: {(self.tmp / f'daphne{index}.log').read_text()}"
        )

    def alive(self, index: int) -> bool:
        process = self.processes[index]
        return process is not None and process.poll() is None

    def kill(self, index: int, sig=signal.SIGKILL) -> None:
        process = self.processes[index]
        process.send_signal(sig)
        process.wait(timeout=15)

    def stop_all(self) -> None:
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=15)


def cluster_env(database_url: str, hosts, tmp: Path, redis_url: str) -> dict:
    """The environment of a cluster's Daphne processes."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "scale-test-secret-" + "s" * 40,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "OLLAMA_URLS": ",".join(host.url for host in hosts),
        "STATIC_ROOT": str(tmp / "static"),
        "MEDIA_DIR": str(tmp / "media"),
        "CHECKPOINT_SECONDS": "0.25",
        # STALE_SECONDS as shipped (20 s): a dead process is found through Redis in
        # seconds (relay/liveness.py), not by its rows' heartbeat ageing.
        "STREAM_FLUSH_MS": "30",
        "MESSAGES_PER_MINUTE": "1000",
        "MAX_CONCURRENT_ANSWERS": "20",
        "LOG_LEVEL": "WARNING",
        # Titles would take the scripted replies meant for the answers.
        "AUTO_TITLES": "false",
    }


@pytest.fixture(scope="package")
def package_redis(redis_server_binary, tmp_path_factory):
    """The cluster's Redis, of this run alone. On the machine's shared Redis, a test run
    of another checkout (CI beside a developer, or two developers) put its processes in
    the same `chat:processes` set: when we killed one of ours, theirs saw its key go,
    swept their own database and forgot it (SREM), or their cluster's FLUSHDB emptied
    the set, before our surviving process confirmed the death, so it never recovered the
    answer: the other tab stayed on `streaming` (until STALE_SECONDS) and the next test
    found the row still busy."""
    server = PrivateRedis(tmp_path_factory.mktemp("package-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def cluster(database_url, hosts, package_redis, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scale")
    env = cluster_env(database_url, hosts, tmp, package_redis.url)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    running = Cluster(env, tmp)
    running.start(0)
    running.start(1)
    yield running
    running.stop_all()


@pytest.fixture
def both(cluster):
    """Both processes up at the start of each test (a test may kill one)."""
    for index in (0, 1):
        if not cluster.alive(index):
            cluster.start(index)
    return cluster


class Account:
    """A logged-in person: session cookie and CSRF token, as a browser has them."""

    def __init__(self, base_url: str):
        self.client = httpx.Client(base_url=base_url, timeout=10)
        page = self.client.get("/signup/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        name = f"u{uuid.uuid4().hex[:10]}"
        response = self.client.post(
            "/signup/",
            data={
                "username": name,
                "password1": "a-long-password-77",
                "password2": "a-long-password-77",
                "csrfmiddlewaretoken": token,
            },
            headers={"Referer": base_url + "/signup/"},
        )
        assert response.status_code == 302, response.text
        self.cookie = "; ".join(f"{k}={v}" for k, v in self.client.cookies.items())

    def new_conversation(self, model: str = "llama3.2") -> str:
        response = self.client.post(
            "/c/new/",
            data={"model": model},
            headers={"X-CSRFToken": self.client.cookies["csrftoken"]},
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]


@pytest.fixture
def account(both):
    return Account(both.url(0))


@pytest.fixture(scope="package")
def redis_server_binary(services_up):
    require_redis_server()


def streaming_rows(database_url: str) -> list[tuple]:
    """Answers still `streaming`, i.e. conversations that refuse a new message as busy."""
    import psycopg

    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT m.uuid, c.uuid, m.status, m.task_channel FROM chat_message m "
            "JOIN chat_conversation c ON c.id = m.conversation_id WHERE m.status = 'streaming'"
        ).fetchall()


def assert_settled(database_url: str, within: float = 5.0) -> None:
    """The invariant every scale run ends with: within `within` seconds no answer is left
    `streaming` (so no conversation is busy), and every failed or interrupted answer says
    why in words."""
    import psycopg

    deadline = time.monotonic() + within
    while (left := streaming_rows(database_url)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"answers left streaming (their conversations stay busy): {left}"
    with psycopg.connect(database_url) as connection:
        silent = connection.execute(
            "SELECT uuid, status FROM chat_message "
            "WHERE status IN ('failed', 'interrupted') AND error = ''"
        ).fetchall()
    assert not silent, f"answers that ended without saying why: {silent}"
