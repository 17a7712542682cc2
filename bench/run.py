"""The benchmark: relay throughput and latency against a bare asyncio relay, and page
speed. See docs/benchmarks.md for what each figure means and the latest results.

    .venv/bin/python -m bench.run                 # everything (about 5 minutes)
    .venv/bin/python -m bench.run --quick         # small sizes: checks it all works
    .venv/bin/python -m bench.run --scenarios s200 s200-redis --no-pages
    .venv/bin/python -m bench.run --scenarios s200 --profile   # + py-spy of the server

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth; a scratch database is
created and dropped) and, for the `-redis` scenario, Redis on 127.0.0.1:6379 (database
13, flushed). Processes: the server (Daphne, or the bare relay) pinned to one core; the
Ollama test double, the load client and this runner pinned to the other. Results: a
table on stdout and JSON in bench/results/ (gitignored).
"""

import argparse
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.report import machine, report, short, summarise_profile
from bench.system import (
    Proc,
    cpu_seconds,
    free_port,
    pg_connect,
    proc_status,
    settled_writes,
    wait_port,
    writes_delta,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
REDIS_URL = "redis://127.0.0.1:6379/13"
MODEL = "llama3.2"


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    streams: int
    tokens: int
    rate: float  # tokens/s per stream; 0 = as fast as the double can send
    redis: bool = False

    @property
    def ideal_s(self) -> float | None:
        return self.tokens / self.rate if self.rate else None

    def quick(self) -> "Scenario":
        return Scenario(
            self.name,
            self.title + " [quick]",
            max(1, self.streams // 10),
            max(20, self.tokens // 4),
            self.rate,
            self.redis,
        )


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("s1", "1 stream, 200 tokens at 50 tok/s", 1, 200, 50),
        Scenario("s50", "50 streams, 200 tokens at 50 tok/s", 50, 200, 50),
        Scenario("s200", "200 streams, 200 tokens at 50 tok/s", 200, 200, 50),
        Scenario("fast20", "20 streams, 2,000 tokens, as fast as the double sends", 20, 2000, 0),
        Scenario("s200-redis", "200 streams at 50 tok/s, Redis channel layer", 200, 200, 50, True),
    )
}

# Every variable the app reads (.env.example) is dropped from the inherited environment,
# so that a developer's shell can't change what is measured.
APP_VARIABLES = {"DATABASE_URL", "REDIS_URL", "OLLAMA_URL", "OLLAMA_URLS", "DJANGO_SETTINGS_MODULE"}


def _app_variables() -> set[str]:
    found = set(APP_VARIABLES)
    example = ROOT / ".env.example"
    if example.exists():
        found |= set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example.read_text(), re.M))
    return found


# --- the run --------------------------------------------------------------------------


class Run:
    def __init__(self, args):
        self.args = args
        self.stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.dir = RESULTS / self.stamp
        (self.dir / "static").mkdir(parents=True, exist_ok=True)
        self.dbname = f"chat_bench_{uuid.uuid4().hex[:8]}"
        self.server_cpu, self.load_cpu = args.server_cpu, args.load_cpu
        self.procs: list[Proc] = []
        self.baselines: dict[tuple, dict] = {}
        self.secret = "bench-secret-" + uuid.uuid4().hex * 2
        drop = _app_variables()
        self.base_env = {k: v for k, v in os.environ.items() if k not in drop}
        self.app_env = {
            **self.base_env,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "SECRET_KEY": self.secret,
            "DEBUG": "false",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{self.dbname}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "STATIC_ROOT": str(self.dir / "static"),  # made empty: no collectstatic
            "MEDIA_DIR": str(self.dir / "media"),
            "LOG_LEVEL": "WARNING",
            # Each bench user has one stream at a time; these caps are per user.
            "MESSAGES_PER_MINUTE": "100000",
            "MAX_CONCURRENT_ANSWERS": "10",
            # A title is a second, non-streamed request per new conversation: not relay
            # work, and it would hold the double for another answer's length.
            "AUTO_TITLES": "false",
            "PYTHONUNBUFFERED": "1",
        }

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    # --- set-up -----------------------------------------------------------------------

    def create_database(self) -> None:
        with pg_connect() as connection:
            connection.execute(f'CREATE DATABASE "{self.dbname}"')
        subprocess.run(
            [PY, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
            cwd=ROOT,
            env=self.app_env,
            check=True,
        )
        os.environ.update(self.app_env)
        import django

        django.setup()

    def drop_database(self) -> None:
        from django.db import connections

        connections.close_all()
        with pg_connect() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')

    def seed_streams(self, count: int) -> None:
        from bench import seed

        self.users = seed.users(f"bench{self.stamp[-6:]}_", count)
        self.cookies = seed.session_cookies(self.users)

    def conversations(self, count: int, label: str) -> list[dict]:
        """`count` fresh conversations of different users (+1 for the warm-up)."""
        from django.db import connections

        from bench import seed

        people = self.users[: count + 1]
        uuids = seed.conversations(people, MODEL, label)
        connections.close_all()  # no backend of ours left open while measuring writes
        return [{"conversation": u, "cookie": c} for u, c in zip(uuids, self.cookies, strict=False)]

    # --- processes --------------------------------------------------------------------

    def start(self, name: str, command: list[str], cpu: int | None, env=None, **popen) -> Proc:
        proc = Proc(name, command, cpu, env or self.base_env, self.dir / f"{name}.log", **popen)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc, sig=signal.SIGTERM) -> None:
        proc.stop(sig)
        if proc in self.procs:
            self.procs.remove(proc)

    def start_double(self, sc: Scenario) -> tuple[Proc, str]:
        port = free_port()
        command = [
            PY,
            "-m",
            "tests.fake_ollama",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--timestamps",
            "--tokens",
            str(sc.tokens),
            "--rate",
            str(sc.rate),
            "--quiet",
        ]
        proc = self.start(f"{sc.name}-double", command, self.load_cpu)
        wait_port(port, proc)
        return proc, f"http://127.0.0.1:{port}"

    def start_daphne(self, sc: Scenario, ollama: str) -> tuple[Proc, int]:
        port = free_port()
        env = {**self.app_env, "OLLAMA_URL": ollama}
        if sc.redis:
            env["REDIS_URL"] = REDIS_URL
        command = [
            PY,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ]
        proc = self.start(f"{sc.name}-daphne", command, self.server_cpu, env)
        wait_port(port, proc)
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # Django answers: the app is loaded
            try:
                if httpx.get(f"http://127.0.0.1:{port}/login/", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        return proc, port

    def start_bare(self, sc: Scenario, ollama: str) -> tuple[Proc, int]:
        port = free_port()
        command = [PY, "-m", "bench.bare_relay", "--port", str(port), "--ollama", ollama]
        proc = self.start(f"{sc.name}-bare", command, self.server_cpu)
        wait_port(port, proc)
        return proc, port

    # --- one measurement --------------------------------------------------------------

    def drive(
        self, sc: Scenario, kind: str, server: Proc, port: int, double: Proc, streams: list[dict]
    ) -> dict:
        """Run the load client against a started server; sample the server around it."""
        ideal = sc.ideal_s or sc.tokens / 1000
        deadline_s = min(600.0, ideal * 4 + 60)
        spec = {
            "ws_url": f"ws://127.0.0.1:{port}",
            "origin": f"http://127.0.0.1:{port}",
            "model": MODEL,
            "tokens": sc.tokens,
            "deadline_s": deadline_s,
            "warmup": streams[-1],
            "streams": streams[:-1],
        }
        spec_path = self.dir / f"{sc.name}-{kind}-spec.json"
        out_path = self.dir / f"{sc.name}-{kind}-client.json"
        spec_path.write_text(json.dumps(spec))
        client = self.start(
            f"{sc.name}-{kind}-client",
            [PY, "-m", "bench.client", "--spec", str(spec_path), "--out", str(out_path)],
            self.load_cpu,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(line.strip()) for line in client.popen.stdout], daemon=True
        ).start()

        def expect(word: str, timeout: float) -> str:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                raise RuntimeError(f"{client.name}: no {word} in {timeout:.0f} s") from None
            if not line.startswith(word):
                raise RuntimeError(f"{client.name}: {line!r} instead of {word}:\n{client.tail()}")
            return line

        def say(word: str) -> None:
            client.popen.stdin.write(word + "\n")
            client.popen.stdin.flush()

        profiler = None
        try:
            cpu_start = cpu_seconds(server.pid)
            expect("READY", deadline_s + 120)
            connect_cpu = cpu_seconds(server.pid) - cpu_start
            cpu0, double0, t0 = cpu_seconds(server.pid), cpu_seconds(double.pid), time.monotonic()
            if self.args.profile and kind == "ours":
                profiler = self.start_profiler(sc, server.pid)
            say("GO")
            expect("DONE", deadline_s + 30)
            cpu1, double1, t1 = cpu_seconds(server.pid), cpu_seconds(double.pid), time.monotonic()
            status = proc_status(server.pid)
            say("CLOSE")
            client.popen.wait(timeout=60)
        finally:
            if profiler is not None:
                self.stop(profiler, signal.SIGINT)
            self.stop(client)
        result = json.loads(out_path.read_text())
        tokens = result["tokens_received"] or 1
        result.update(
            {
                "server_cpu_s": cpu1 - cpu0,
                "server_cpu_us_per_token": (cpu1 - cpu0) / tokens * 1e6,
                "server_core_busy": (cpu1 - cpu0) / (t1 - t0),
                "server_connect_cpu_ms_per_socket": connect_cpu / max(1, len(streams)) * 1000,
                "peak_rss_mb": status.get("VmHWM", 0) / 1024,
                "rss_mb": status.get("VmRSS", 0) / 1024,
                "threads": status.get("Threads"),
                "double_core_busy": (double1 - double0) / (t1 - t0),
                "client_core_busy": result["client_cpu_s"] / (t1 - t0),
                "measured_s": t1 - t0,
            }
        )
        # The double and the client share one core: near 100 % the figures measure them.
        result["load_core_busy"] = result["double_core_busy"] + result["client_core_busy"]
        if profiler is not None:
            result["profile"] = summarise_profile(self.dir / f"{sc.name}-pyspy.txt")
        return result

    def start_profiler(self, sc: Scenario, pid: int) -> Proc | None:
        spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
        if not Path(spy).exists():
            self.log("  py-spy not found (pip install -r requirements-dev.txt): no profile")
            return None
        out = self.dir / f"{sc.name}-pyspy.txt"
        command = [
            spy,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "200",
            "--nonblocking",
            "--output",
            str(out),
        ]
        proc = self.start(f"{sc.name}-pyspy", command, self.load_cpu)
        time.sleep(0.5)
        return proc

    def ours(self, sc: Scenario, ollama: str, double: Proc) -> dict:
        streams = self.conversations(sc.streams, sc.name)
        if sc.redis:
            import redis

            redis.Redis.from_url(REDIS_URL).flushdb()
        before = settled_writes(self.dbname)
        server, port = self.start_daphne(sc, ollama)
        try:
            result = self.drive(sc, "ours", server, port, double, streams)
        finally:
            self.stop(server)
        writes = writes_delta(before, settled_writes(self.dbname))
        answers = result["started"] + 1  # + the warm-up answer, which writes the same rows
        result["db_writes"] = writes
        result["db_writes_per_answer"] = sum(writes.values()) / answers
        result["db_message_writes_per_answer"] = writes.get("chat_message", 0) / answers
        return result

    def bare(self, sc: Scenario, ollama: str, double: Proc) -> dict:
        key = (sc.streams, sc.tokens, sc.rate)
        if key in self.baselines:
            return {**self.baselines[key], "reused": True}
        streams = [{"conversation": str(uuid.uuid4()), "cookie": ""} for _ in range(sc.streams + 1)]
        server, port = self.start_bare(sc, ollama)
        try:
            result = self.drive(sc, "bare", server, port, double, streams)
        finally:
            self.stop(server)
        result["db_writes_per_answer"] = 0
        self.baselines[key] = result
        return result

    def scenario(self, sc: Scenario) -> dict:
        self.log(f"== {sc.name}: {sc.title}")
        double, ollama = self.start_double(sc)
        out: dict = {"scenario": asdict(sc), "ideal_s": sc.ideal_s}
        try:
            for kind in ("ours", "bare") if not self.args.no_baseline else ("ours",):
                started = time.monotonic()
                try:
                    out[kind] = (self.ours if kind == "ours" else self.bare)(sc, ollama, double)
                except Exception as exc:
                    out[kind] = {"error": repr(exc)[:2000]}
                self.log(f"   {kind}: {short(out[kind])} ({time.monotonic() - started:.0f} s)")
        finally:
            self.stop(double)
        return out

    def pages(self) -> dict:
        self.log("== pages")
        out = self.dir / "pages.json"
        quick = self.args.quick
        command = [
            PY,
            "-m",
            "bench.pages",
            "--out",
            str(out),
            "--messages",
            "200" if quick else "2000",
            "--conversations",
            "1000" if quick else "10000",
            "--runs",
            "3" if quick else "7",
        ]
        if self.args.profile:
            command.append("--profile")
        proc = self.start("pages", command, self.server_cpu, self.app_env)
        try:
            proc.popen.wait(timeout=900)
        finally:
            self.stop(proc)
        if not out.exists():
            return {"error": f"bench.pages failed:\n{proc.tail(30)}"}
        return json.loads(out.read_text())

    def cleanup(self) -> None:
        for proc in list(self.procs):
            self.stop(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check it works")
    parser.add_argument("--scenarios", nargs="*", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--no-baseline", action="store_true", help="skip the bare relay")
    parser.add_argument("--no-pages", action="store_true", help="skip page speed")
    parser.add_argument("--pages-only", action="store_true", help="only page speed")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the server in each scenario, cProfile the pages",
    )
    parser.add_argument("--server-cpu", type=int, default=0, help="core for the server")
    parser.add_argument("--load-cpu", type=int, default=1, help="core for double + client")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the scratch DB")
    args = parser.parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        args.server_cpu = args.load_cpu = None
    if args.load_cpu is not None:
        os.sched_setaffinity(0, {args.load_cpu})  # this runner stays off the server's core
    scenarios = [] if args.pages_only else [SCENARIOS[name] for name in args.scenarios]
    if args.quick:
        scenarios = [sc.quick() for sc in scenarios]

    run = Run(args)
    results: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(PY).name, "-m", "bench.run", *(argv or sys.argv[1:])]),
        "machine": machine(ROOT),
        "settings": {
            k: run.app_env.get(k, "(default)")
            for k in ("STREAM_FLUSH_MS", "CHECKPOINT_SECONDS", "AUTO_TITLES", "DEBUG")
        },
        "quick": args.quick,
        "scenarios": [],
    }
    try:
        with pg_connect():
            pass
    except Exception as exc:
        print(f"PostgreSQL is not reachable on 127.0.0.1:5432 as postgres: {exc}", file=sys.stderr)
        return 2
    if any(sc.redis for sc in scenarios):
        try:
            import redis

            redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        except Exception as exc:
            run.log(f"Redis is not reachable ({exc}): skipping the Redis scenario")
            scenarios = [sc for sc in scenarios if not sc.redis]

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        run.log(f"scratch database {run.dbname}; logs in {run.dir.relative_to(ROOT)}")
        run.create_database()
        if scenarios:
            run.seed_streams(max(sc.streams for sc in scenarios) + 1)
        for sc in scenarios:
            results["scenarios"].append(run.scenario(sc))
        if not args.no_pages:
            results["pages"] = run.pages()
    finally:
        run.cleanup()
        results["machine"]["loadavg_at_end"] = os.getloadavg()
        if args.keep_db:
            run.log(f"kept database {run.dbname}")
        else:
            try:
                run.drop_database()
            except Exception as exc:
                run.log(f"could not drop {run.dbname}: {exc}")
        path = RESULTS / f"{run.stamp}.json"
        path.write_text(json.dumps(results, indent=1, default=str))
        shutil.copyfile(path, RESULTS / "latest.json")
    print(report(results))
    print(
        f"\nresults: {path.relative_to(ROOT)}  (logs and raw files: {run.dir.relative_to(ROOT)}/)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
