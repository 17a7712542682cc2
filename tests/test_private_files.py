"""The signing key, the SQLite database (with its -wal/-shm files) and the uploads are
readable by the app's own account only, whatever the umask (config/private_files.py).
Each path runs as run.sh runs it: a separate process, here under the common umask 022."""

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_conversation import browser_for, upload

ROOT = Path(__file__).resolve().parents[1]


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def run(*args: str, env: dict | None = None) -> str:
    """A command in the project folder under umask 022; its standard output."""
    result = subprocess.run(
        args, cwd=ROOT, env=env, umask=0o022, capture_output=True, text=True, check=True
    )
    return result.stdout


def app_env(tmp_path) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "private-files-test-" + "p" * 40,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "MEDIA_DIR": str(tmp_path / "media"),
        "REDIS_URL": "",
    }


def manage(tmp_path, *args: str) -> str:
    return run(sys.executable, "manage.py", *args, env=app_env(tmp_path))


# --- the signing key (run.sh) --------------------------------------------------------


def secret_key(path) -> str:
    return run(sys.executable, "-m", "config.private_files", "secret-key", str(path)).strip()


def test_a_new_secret_key_file_is_private_and_kept(tmp_path):
    path = tmp_path / ".secret_key"
    key = secret_key(path)
    assert mode(path) == 0o600
    assert len(key) >= 50 and path.read_text().strip() == key
    assert secret_key(path) == key  # made once: sessions survive restarts


def test_an_existing_world_readable_secret_key_is_made_private(tmp_path):
    path = tmp_path / ".secret_key"
    path.write_text("an-old-key\n")
    path.chmod(0o644)
    assert secret_key(path) == "an-old-key"
    assert mode(path) == 0o600


@pytest.fixture
def project_copy(tmp_path) -> Path:
    """run.sh in a folder of its own whose .venv runs the real Python on this checkout
    and whose Daphne only says how it was started."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "setup.sh").write_text("#!/bin/sh\n")  # .venv is ready
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(
        f'#!/bin/sh\nexport PYTHONPATH="{ROOT}"\n'
        f'[ "$1" = manage.py ] && {{ shift; exec "{sys.executable}" "{ROOT}/manage.py" "$@"; }}\n'
        f'exec "{sys.executable}" "$@"\n'
    )
    (bin_dir / "daphne").write_text('#!/bin/sh\necho "daphne $*"\n')
    for path in (tmp_path / "scripts" / "setup.sh", bin_dir / "python", bin_dir / "daphne"):
        path.chmod(0o755)
    (tmp_path / "run.sh").write_text((ROOT / "run.sh").read_text())
    return tmp_path


def run_sh(folder: Path, **env: str) -> str:
    """`bash run.sh` in `folder` under umask 022, no SECRET_KEY given; its output."""
    environ = {**app_env(folder), "STATIC_ROOT": str(folder / "static")}
    for name in ("SECRET_KEY", "HOST", "PORT", "BEHIND_PROXY"):
        environ.pop(name, None)
    environ.update(env)
    result = subprocess.run(
        ["bash", "run.sh"],
        cwd=folder,
        env=environ,
        umask=0o022,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def test_run_sh_makes_a_private_key_and_database_and_starts_daphne(project_copy):
    output = run_sh(project_copy)
    assert mode(project_copy / ".secret_key") == 0o600
    assert mode(project_copy / "db.sqlite3") == 0o600
    key = (project_copy / ".secret_key").read_text()
    # Clients reach this Daphne directly: it must not believe X-Forwarded-For.
    assert "daphne -b 127.0.0.1 -p 8000 config.asgi:application" in output
    # Behind the documented proxy it takes the client's address from the proxy.
    output = run_sh(project_copy, BEHIND_PROXY="true")
    assert "daphne -b 127.0.0.1 -p 8000 --proxy-headers config.asgi:application" in output
    assert (project_copy / ".secret_key").read_text() == key  # made once


# --- the database ----------------------------------------------------------------------


WRITE_AND_LOOK = """
import os, stat
from django.conf import settings
from chat import services
services.register_user("alice", "a-long-password-123")  # a write, with the connection open
name = str(settings.DATABASES["default"]["NAME"])
for suffix in ("", "-wal", "-shm"):
    print(suffix or "db", oct(stat.S_IMODE(os.stat(name + suffix).st_mode)))
"""


def test_a_new_database_and_its_wal_files_are_private(tmp_path):
    manage(tmp_path, "migrate", "--noinput", "--verbosity", "0")
    assert mode(tmp_path / "db.sqlite3") == 0o600
    # While a connection writes, SQLite keeps -wal and -shm beside the database.
    lines = manage(tmp_path, "shell", "--no-imports", "-c", WRITE_AND_LOOK).split("\n")
    assert [line for line in lines if line] == ["db 0o600", "-wal 0o600", "-shm 0o600"]


def test_an_existing_world_readable_database_is_made_private(tmp_path):
    database = tmp_path / "db.sqlite3"
    old_umask = os.umask(0o022)
    try:
        # An earlier version's database, open elsewhere in WAL mode: all three are 0644.
        other = sqlite3.connect(database)
        other.execute("PRAGMA journal_mode=WAL")
        other.execute("CREATE TABLE t (x)")
        other.execute("INSERT INTO t VALUES (1)")
        other.commit()
    finally:
        os.umask(old_umask)
    try:
        assert {mode(f"{database}{suffix}") for suffix in ("", "-wal", "-shm")} == {0o644}
        manage(tmp_path, "migrate", "--noinput", "--verbosity", "0")
        assert {mode(f"{database}{suffix}") for suffix in ("", "-wal", "-shm")} == {0o600}
    finally:
        other.close()


# --- uploads ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_upload_makes_a_private_media_folder_and_file(conversation, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"  # not there yet
    old_umask = os.umask(0o022)
    try:
        assert upload(browser_for(conversation.owner), conversation).status_code == 201
    finally:
        os.umask(old_umask)
    [stored] = [path for path in settings.MEDIA_ROOT.rglob("*") if path.is_file()]
    assert mode(stored) == 0o600
    folder = stored.parent
    while folder != tmp_path:
        assert mode(folder) == 0o700, folder
        folder = folder.parent


def test_an_existing_media_folder_open_to_others_is_closed_at_start_up(tmp_path):
    media = tmp_path / "media"
    (media / "attachments").mkdir(parents=True)
    media.chmod(0o755)
    manage(tmp_path, "check")
    assert mode(media) == 0o700
