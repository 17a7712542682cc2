"""Files holding secrets or users' data are readable by the app's own account only.

The signing key (`.secret_key`, made by run.sh), the SQLite database with its `-wal`,
`-shm` and `-journal` files, and the uploaded images under MEDIA_ROOT are created 0600
(folders 0700) whatever the umask, and ones left readable by others by an earlier
version are tightened at start-up. Other processes of the same machine have no business
reading sessions, password hashes or people's conversations.

- New uploads: Django's FILE_UPLOAD_PERMISSIONS / FILE_UPLOAD_DIRECTORY_PERMISSIONS
  (settings), which also make MEDIA_ROOT 0700 when the first upload creates it.
- SQLite: its files are tightened when Django opens the first connection to them; SQLite
  gives new `-wal`/`-shm`/`-journal` files the database file's own mode.
- An existing MEDIA_ROOT: tightened at start-up (config.apps); with the folder 0700 the
  files inside, whatever their mode, are out of others' reach.
- `.secret_key`: `python -m config.private_files secret-key PATH` (run.sh).
"""

import os
import secrets
import stat
import sys
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")
_checked: set[str] = set()


def make_private(path: str | os.PathLike) -> bool:
    """Take every group and other permission off `path` if it exists (0644 -> 0600,
    0755 -> 0700). True when the mode changed. Symlinks are left alone (their target
    may not be ours)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(mode) or not mode & 0o077:
        return False
    os.chmod(path, stat.S_IMODE(mode) & 0o700)
    return True


def read_or_create_secret_key(path: str | os.PathLike) -> str:
    """The signing key kept in `path`: read it, or make a new one (50 random bytes,
    URL-safe text) in a file created 0600 whatever the umask. An existing file readable
    by others is made private first. Raises OSError when the file cannot be written."""
    path = Path(path)
    try:
        # O_EXCL: never follow a planted symlink or overwrite a key made meanwhile.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        make_private(path)
        return path.read_text().strip()
    key = secrets.token_urlsafe(50)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    return key


def make_sqlite_private(database: str | os.PathLike) -> None:
    """Make the SQLite file `database` and its -wal, -shm and -journal files private."""
    for suffix in _SQLITE_SUFFIXES:
        make_private(f"{database}{suffix}")


def on_connection_created(sender, connection, **kwargs) -> None:
    """django.db.backends.signals.connection_created receiver: the first time this
    process opens a SQLite database file, make its files private (once per file: SQLite
    then creates the journal files with the database's own mode)."""
    if connection.vendor != "sqlite" or connection.is_in_memory_db():
        return
    name = str(connection.settings_dict["NAME"])
    if name not in _checked:
        make_sqlite_private(name)
        _checked.add(name)


def main(argv: list[str]) -> int:
    """`python -m config.private_files secret-key PATH` prints the key kept in PATH."""
    if len(argv) != 2 or argv[0] != "secret-key":
        print("usage: python -m config.private_files secret-key PATH", file=sys.stderr)
        return 2
    print(read_or_create_secret_key(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
