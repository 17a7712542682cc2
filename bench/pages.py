"""Page speed: a conversation of thousands of messages and the list of a user with
thousands of conversations, served in-process by Django's test Client against the
PostgreSQL scratch database (bench.run starts this module in its own process, pinned to
the server's core, with the same production settings as the Daphne it benchmarks).

Server time is the wall time of `Client.get()` (the whole middleware stack, the view,
the queries and the template), the median of several runs after a warm-up. The query
count comes from one more run under CaptureQueriesContext. Each page is measured at two
sizes, so a count that does not change with the size shows there is no N+1.
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import time

import django

QUESTION = "How do I read a large CSV file in Python without running out of memory? (#{n})"
ANSWER = """Read it **in chunks** instead of all at once. With the standard library:

```python
import csv

with open("big.csv", newline="") as f:
    for row in csv.DictReader(f):
        handle(row)  # one row at a time: constant memory
```

With pandas, pass `chunksize`:

```python
for chunk in pd.read_csv("big.csv", chunksize=100_000):
    process(chunk)
```

- Only keep the columns you need (`usecols=[...]`).
- Pick small dtypes (`category`, `int32`).
- Write results as you go rather than collecting them in a list.

That keeps memory bounded by the chunk size, not the file size."""
STATS = {
    "eval_count": 182,
    "eval_duration": 3_640_000_000,
    "prompt_eval_count": 41,
    "prompt_eval_duration": 10_250_000,
    "load_duration": 35_000,
    "total_duration": 3_700_000_000,
    "done_reason": "stop",
    "wall_ms": 3712,
}
MODEL = "llama3.2"


def _link_parents(conversation_ids: list[int]) -> None:
    """Each message's parent is the one before it in its conversation (a single branch),
    and each conversation's current leaf is its last message: one UPDATE each."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE chat_message m SET parent_id = p.prev
            FROM (SELECT id, lag(id) OVER (PARTITION BY conversation_id ORDER BY id) AS prev
                  FROM chat_message WHERE conversation_id = ANY(%s)) p
            WHERE m.id = p.id AND p.prev IS NOT NULL
            """,
            [conversation_ids],
        )
        cursor.execute(
            """
            UPDATE chat_conversation c SET current_leaf_id = l.last
            FROM (SELECT conversation_id, max(id) AS last FROM chat_message
                  WHERE conversation_id = ANY(%s) GROUP BY conversation_id) l
            WHERE c.id = l.conversation_id
            """,
            [conversation_ids],
        )


def _messages(conversation, count: int) -> list:
    from chat.models import Message

    rows = []
    for n in range(count):
        if n % 2 == 0:
            rows.append(
                Message(conversation=conversation, role="user", content=QUESTION.format(n=n))
            )
        else:
            rows.append(
                Message(
                    conversation=conversation,
                    role="assistant",
                    model=MODEL,
                    content=ANSWER,
                    status="complete",
                    stats=STATS,
                )
            )
    return rows


def long_conversation(user, messages: int):
    from chat.models import Conversation, Message

    conversation = Conversation.objects.create(owner=user, model=MODEL, title="A long one")
    Message.objects.bulk_create(_messages(conversation, messages), batch_size=2000)
    _link_parents([conversation.id])
    return conversation


def many_conversations(user, count: int) -> None:
    """`count` conversations of two messages each, spread over the last years, a few
    pinned and some archived, as a long-time user's list looks."""
    from django.db import connection

    from chat.models import Conversation, Message

    made = Conversation.objects.bulk_create(
        (
            Conversation(owner=user, model=MODEL, title=f"Question number {n} about CSV files")
            for n in range(count)
        ),
        batch_size=2000,
    )
    rows = []
    for conversation in made:
        rows += _messages(conversation, 2)
    Message.objects.bulk_create(rows, batch_size=4000)
    _link_parents([c.id for c in made])
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE chat_conversation c
            SET updated = now() - (r.n * interval '53 minutes'),
                pinned = (r.n %% 2000 = 7), archived = (r.n %% 50 = 3)
            FROM (SELECT id, row_number() OVER (ORDER BY id DESC) AS n
                  FROM chat_conversation WHERE owner_id = %s) r
            WHERE c.id = r.id
            """,
            [user.pk],
        )


def _top(profile: cProfile.Profile, limit: int = 12) -> list[str]:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return lines[start:]


def measure(client, path: str, runs: int, profile: bool) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    result: dict = {"path": path}
    try:
        response = client.get(path)  # warm-up (and any lazy set-up)
        result["status"] = response.status_code
        result["bytes"] = len(response.content)
        connection.queries_log.clear()  # it keeps 9,000 queries at most
        with CaptureQueriesContext(connection) as captured:
            client.get(path)
        result["queries"] = len(captured.captured_queries)
        result["db_ms"] = round(sum(float(q["time"]) for q in captured.captured_queries) * 1000, 2)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            client.get(path)
            times.append((time.perf_counter() - started) * 1000)
        result["median_ms"] = round(statistics.median(times), 2)
        result["min_ms"] = round(min(times), 2)
        result["max_ms"] = round(max(times), 2)
        result["runs"] = runs
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            client.get(path)
            profiler.disable()
            result["profile_tottime"] = _top(profiler)
    except Exception as exc:  # a page being rewritten may break: say so, go on
        result["error"] = repr(exc)[:500]
    return result


def answer_writes(user, conversation, runs: int) -> dict:
    """What a `send` costs the database before the first token can go (services.start_answer,
    run by the socket in the database thread), and a checkpoint and the final save."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from chat import services

    result: dict = {}
    try:
        times, counts, checkpoint, finish = [], [], [], []
        for n in range(runs + 1):
            connection.queries_log.clear()  # it keeps 9,000 queries at most
            started = time.perf_counter()
            with CaptureQueriesContext(connection) as captured:
                begun = services.start_answer(
                    user,
                    conversation.uuid,
                    content=f"again {n}",
                    model=MODEL,
                    task_channel=f"bench.{n}",
                )
            elapsed = (time.perf_counter() - started) * 1000
            with CaptureQueriesContext(connection) as saved:
                services.checkpoint_answer(begun.answer.id, ANSWER[:200], "")
            with CaptureQueriesContext(connection) as ended:
                services.finish_answer(begun.answer.id, "complete", ANSWER, "", STATS)
            if n:  # the first one is a warm-up
                times.append(elapsed)
                counts.append(len(captured.captured_queries))
                checkpoint.append(len(saved.captured_queries))
                finish.append(len(ended.captured_queries))
        result = {
            "start_queries": max(counts),
            "start_median_ms": round(statistics.median(times), 2),
            "checkpoint_queries": max(checkpoint),
            "finish_queries": max(finish),
        }
    except Exception as exc:
        result["error"] = repr(exc)[:500]
    return result


def _next_cursor(client, path: str) -> str | None:
    try:
        return json.loads(client.get(path).content).get("next")
    except Exception:
        return None


def run(messages: int, conversations: int, runs: int, profile: bool) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from bench import seed

    User = get_user_model()
    label = f"p{int(time.time())}"
    started = time.monotonic()
    reader, lister = seed.users(f"{label}_reader_", 1)[0], seed.users(f"{label}_lister_", 1)[0]
    small_reader, small_lister = seed.users(f"{label}_small_", 2)
    big = long_conversation(reader, messages)
    small = long_conversation(small_reader, 20)
    many_conversations(lister, conversations)
    many_conversations(small_lister, 100)
    setup_s = time.monotonic() - started
    assert User.objects.filter(pk=lister.pk).exists()

    pages = {}

    def as_user(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    client = as_user(reader)
    pages[f"conversation ({messages} messages)"] = measure(client, f"/c/{big.uuid}/", runs, profile)
    client = as_user(small_reader)
    pages["conversation (20 messages)"] = measure(client, f"/c/{small.uuid}/", runs, False)

    client = as_user(lister)
    pages[f"home ({conversations} conversations)"] = measure(client, "/", runs, profile)
    pages[f"sidebar page 1 ({conversations} conversations)"] = measure(
        client, "/sidebar/", runs, profile
    )
    # Follow the list's cursor halfway down: a keyset page deep in the list.
    cursor, depth = None, 0
    for _ in range(min(100, conversations // 100)):
        following = _next_cursor(client, "/sidebar/" + (f"?before={cursor}" if cursor else ""))
        if not following:
            break
        cursor, depth = following, depth + 1
    if cursor:
        pages[f"sidebar page {depth + 1} ({conversations} conversations)"] = measure(
            client, f"/sidebar/?before={cursor}", runs, False
        )
    # The start of an answer (in the socket's database thread), at both sizes.
    writes = {
        f"start_answer ({messages} messages)": answer_writes(reader, big, runs),
        "start_answer (20 messages)": answer_writes(small_reader, small, runs),
    }
    client = as_user(small_lister)
    pages["home (100 conversations)"] = measure(client, "/", runs, False)
    pages["sidebar page 1 (100 conversations)"] = measure(client, "/sidebar/", runs, False)
    return {"setup_s": round(setup_s, 1), "pages": pages, "answers": writes}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="page speed (started by bench.run)")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="cProfile one request per page")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    result = run(args.messages, args.conversations, args.runs, args.profile)
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
