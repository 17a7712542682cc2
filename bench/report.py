"""The results as Markdown tables, the py-spy profile summary and the machine's
description. Used by bench.run; `python -m bench.report [results.json]` prints the
tables of a saved run again (bench/results/latest.json by default)."""

import os
import platform
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# --- py-spy profile summary -----------------------------------------------------------

CATEGORIES = (
    ("chat/", "app: chat/"),
    ("config/", "app: config/"),
    ("channels_redis/", "channels_redis"),
    ("/redis/", "redis-py"),
    ("channels/", "channels"),
    ("daphne/", "daphne"),
    ("autobahn/", "autobahn (websocket protocol)"),
    ("twisted/", "twisted"),
    ("httpx/", "httpx/httpcore/h11"),
    ("httpcore/", "httpx/httpcore/h11"),
    ("h11/", "httpx/httpcore/h11"),
    ("anyio/", "httpx/httpcore/h11"),
    ("asgiref/", "asgiref (sync/async bridge)"),
    ("psycopg", "psycopg"),
    ("django/db/", "django ORM"),
    ("django/", "django (other)"),
    ("json/", "json"),
    ("asyncio/", "asyncio"),
    ("threading.py", "threads"),
    ("concurrent/", "threads"),
    ("selectors.py", "selectors (idle wait)"),
)


def _category(frame: str) -> str:
    for needle, name in CATEGORIES:
        if needle in frame:
            return name
    return "other"


def summarise_profile(path: Path, top: int = 25) -> dict:
    """Self time by package and by function, and inclusive time of the heaviest
    functions, from py-spy's raw (collapsed stacks) output."""
    if not path.exists():
        return {"error": "no py-spy output"}
    self_by_category: Counter = Counter()
    self_by_function: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        frames = [f for f in frames if "(" in f]  # drop the process/thread labels
        if not frames:
            continue
        total += n
        leaf = frames[-1]
        self_by_category[_category(leaf)] += n
        self_by_function[leaf] += n
        for frame in set(frames):
            inclusive[frame] += n

    def share(counter: Counter) -> list:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "raw": str(path.relative_to(ROOT)),
        "self_by_package_pct": share(self_by_category),
        "self_by_function_pct": share(self_by_function),
        "inclusive_pct": share(inclusive),
    }


# --- the report -----------------------------------------------------------------------


def _f(value, fmt="{:.0f}") -> str:
    return "–" if value is None else fmt.format(value)


def short(result: dict) -> str:
    if "error" in result:
        return "ERROR " + result["error"].splitlines()[0][:200]
    lat = result["token_latency_ms"]
    return (
        f"{result['completed']}/{result['streams']} complete, token p50/p99 "
        f"{_f(lat.get('p50'))}/{_f(lat.get('p99'))} ms, "
        f"{_f(result['server_cpu_us_per_token'])} µs CPU/token"
    )


COLUMNS = (
    "done/all",
    "TTFT p50/p99 ms",
    "token p50/p99 ms",
    "wall p50/max ÷ ideal",
    "tok/s",
    "CPU µs/tok",
    "frames/ans",
    "bytes/ans (÷text)",
    "RSS MB",
    "DB writes/ans",
    "load core %",
)


def row(result: dict, ideal: float | None) -> list[str]:
    if "error" in result:
        return ["ERROR"] + ["–"] * (len(COLUMNS) - 1)
    wall = result["stream_wall_s"]
    lat, ttft = result["token_latency_ms"], result["ttft_ms"]
    if ideal and wall.get("n"):
        walls = f"{wall['p50'] / ideal:.2f}/{wall['max'] / ideal:.2f}"
    else:
        walls = f"{_f(wall.get('p50'), '{:.2f}')}/{_f(wall.get('max'), '{:.2f}')} s"
    text = result["text_bytes_per_answer"]
    nbytes = result["bytes_per_answer"]
    return [
        f"{result['completed']}/{result['streams']}"
        + (f" ({lost} frames lost)" if (lost := result.get("missing_delta_frames")) else ""),
        f"{_f(ttft.get('p50'))}/{_f(ttft.get('p99'))}",
        f"{_f(lat.get('p50'))}/{_f(lat.get('p99'))}",
        walls,
        _f(result["delivered_tokens_per_s"]),
        _f(result["server_cpu_us_per_token"]),
        _f(result["frames_per_answer"], "{:.1f}"),
        f"{_f(nbytes)} ({nbytes / text:.2f})" if text and nbytes else "–",
        _f(result["peak_rss_mb"]),
        _f(result.get("db_writes_per_answer"), "{:.1f}"),
        _f(100 * result["load_core_busy"]),
    ]


def ratio_row(ours: dict, bare: dict) -> list[str]:
    def r(a, b, fmt="{:.2f}×"):
        return fmt.format(a / b) if a and b else "–"

    if "error" in ours or "error" in bare:
        return ["–"] * len(COLUMNS)
    return [
        "",
        "",
        f"{r(ours['token_latency_ms'].get('p50'), bare['token_latency_ms'].get('p50'))}/"
        f"{r(ours['token_latency_ms'].get('p99'), bare['token_latency_ms'].get('p99'))}",
        "",
        r(ours["delivered_tokens_per_s"], bare["delivered_tokens_per_s"]),
        r(ours["server_cpu_us_per_token"], bare["server_cpu_us_per_token"]),
        r(ours["frames_per_answer"], bare["frames_per_answer"]),
        r(ours["bytes_per_answer"], bare["bytes_per_answer"]),
        r(ours["peak_rss_mb"], bare["peak_rss_mb"]),
        "",
        "",
    ]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def report(results: dict) -> str:
    rows = []
    for sc in results["scenarios"]:
        name = sc["scenario"]["name"]
        ours, bare = sc.get("ours", {"error": "not run"}), sc.get("bare")
        rows.append([f"**{name}** ours", *row(ours, sc["ideal_s"])])
        if bare is not None:
            rows.append([f"{name} bare relay", *row(bare, sc["ideal_s"])])
            rows.append([f"{name} ours ÷ bare", *ratio_row(ours, bare)])
    out = [markdown_table(["scenario", *COLUMNS], rows)]
    pages = results.get("pages")
    if pages and "pages" in pages:
        page_rows = [
            [
                name,
                str(p.get("status", "–")),
                str(p.get("queries", "–")),
                _f(p.get("median_ms"), "{:.1f}"),
                _f(p.get("min_ms"), "{:.1f}"),
                _f(p.get("db_ms"), "{:.1f}"),
                _f(p.get("bytes", 0) / 1024, "{:.0f}"),
            ]
            if "error" not in p
            else [name, "ERROR", p["error"][:80], "", "", "", ""]
            for name, p in pages["pages"].items()
        ]
        for name, a in pages.get("answers", {}).items():
            page_rows.append(
                [
                    f"{name} (+ checkpoint, finish)",
                    "",
                    f"{a.get('start_queries', '–')} "
                    f"(+{a.get('checkpoint_queries', '–')}, +{a.get('finish_queries', '–')})",
                    _f(a.get("start_median_ms"), "{:.1f}"),
                    "",
                    "",
                    "",
                ]
                if "error" not in a
                else [name, "ERROR", a["error"][:80], "", "", "", ""]
            )
        header = ["page", "status", "queries", "median ms", "min ms", "DB ms", "KiB"]
        out.append(markdown_table(header, page_rows))
    elif pages:
        out.append(f"pages: {pages.get('error', '')[:2000]}")
    return "\n\n".join(out)


def machine(root: Path = ROOT) -> dict:
    cpu = ""
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        mem_kb = int(handle.readline().split()[1])
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--", "chat", "config"],
                cwd=root,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
    except OSError:
        commit, dirty = "", False
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
        "git": commit + (" (uncommitted changes in chat/ or config/)" if dirty else ""),
    }


def main(argv: list[str] | None = None) -> None:
    import json

    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else ROOT / "bench" / "results" / "latest.json"
    print(report(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
