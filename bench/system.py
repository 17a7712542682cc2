"""Processes pinned to cores, their CPU clocks and memory from /proc, and the scratch
database's write counters (pg_stat_user_tables). Used by bench.run."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinned(command: list[str], cpu: int | None) -> tuple[list[str], object]:
    """The command run on one core: with taskset where there is one (it execs, so the
    pid is the command's), else with sched_setaffinity in the child."""
    if cpu is None:
        return command, None
    if shutil.which("taskset"):
        return ["taskset", "-c", str(cpu), *command], None
    return command, lambda: os.sched_setaffinity(0, {cpu})


class Proc:
    """A child process of ours, with its log; stopped by its own pid only."""

    def __init__(
        self, name: str, command: list[str], cpu: int | None, env: dict, log: Path, **popen
    ):
        self.name = name
        command, preexec = pinned(command, cpu)
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        popen.setdefault("stdout", self._log)
        self.popen = subprocess.Popen(
            command, cwd=ROOT, env=env, stderr=self._log, preexec_fn=preexec, **popen
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout: float = 15) -> None:
        if self.alive():
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        self._log.close()

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_port(port: int, proc: Proc, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited at start:\n{proc.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not listen on {port} within {timeout} s:\n{proc.tail()}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads) from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    return out


# --- the database ---------------------------------------------------------------------


def pg_connect(dbname: str = "postgres"):
    import psycopg

    return psycopg.connect(dbname=dbname, autocommit=True, connect_timeout=5, **PG)


def table_writes(dbname: str) -> dict[str, int]:
    """Rows inserted + updated + deleted per table so far (pg_stat_user_tables)."""
    with pg_connect(dbname) as connection:
        rows = connection.execute(
            "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
        ).fetchall()
    return {name: int(count) for name, count in rows}


def settled_writes(dbname: str, timeout: float = 20) -> dict[str, int]:
    """The counters once every other backend on the database has gone (a backend flushes
    its statistics when it exits) and two readings agree."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with pg_connect(dbname) as connection:
            others = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                "pg_backend_pid()",
                [dbname],
            ).fetchone()[0]
        if not others:
            break
        time.sleep(0.2)
    previous = None
    while time.monotonic() < deadline:
        current = table_writes(dbname)
        if current == previous:
            return current
        previous = current
        time.sleep(0.6)
    return previous or table_writes(dbname)


def writes_delta(before: dict, after: dict) -> dict[str, int]:
    return {
        k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)
    }
