"""The text-input and import tests again, on a real PostgreSQL.

PostgreSQL refuses what SQLite stores: NUL in text, `\\u0000` and lone surrogates in
jsonb, NaN and Infinity in jsonb. Every entry point must refuse or clean those before
the database sees them, on both. The files below run in a pytest of their own with
DATABASE_URL pointing at PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth: the
scale tests' set-up); pytest-django creates and drops its test database there.

Without PostgreSQL the test is skipped with a message saying how to start it; in CI
(CI=true) it fails instead, so it can never silently not run.
"""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[1]
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
FILES = ["tests/test_text_input.py", "tests/test_history_import.py"]
HOW_TO_START = (
    "This test needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth): start it, "
    "e.g. `pg_ctlcluster 15 main start`, or run `./test.sh -m 'not postgres'`."
)


def _postgres_missing() -> str | None:
    import psycopg

    try:
        psycopg.connect(dbname="postgres", connect_timeout=2, **PG).close()
    except Exception as exc:
        return f"PostgreSQL is not reachable ({exc})"
    return None


def _drop(database: str) -> None:
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def test_text_input_and_import_hold_on_postgresql():
    missing = _postgres_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing}. {HOW_TO_START}")
        pytest.skip(f"{missing}. {HOW_TO_START}")
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    # A name of its own: other runs (other checkouts) may use the same server at once.
    name = f"chat_text_{uuid.uuid4().hex[:8]}"
    env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{name}"
    try:
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *FILES],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        # pytest-django drops it too, unless a connection of an async test's worker
        # thread is still open (or the run was killed): never leave one behind.
        _drop(f"test_{name}")
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0, (
        f"on PostgreSQL: {summary}\n{run.stdout[-6000:]}{run.stderr[-2000:]}"
    )
    assert " passed" in summary and "skipped" not in summary, summary
