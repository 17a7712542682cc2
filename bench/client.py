"""The load generator: one websocket per conversation, each sending one question and
reading its answer, in its own process (pinned by bench.run to the core the server does
not use).

It speaks the chat socket's protocol (docs/websocket.md) and is driven over stdin/stdout
so that bench.run can read the server's CPU clock exactly when the streams start and end:

    bench.run                      client
    ---------                      ------
                                   warm-up answer (one stream, not measured)
                                   connects every socket, reads each snapshot
                     <- READY ok failed
    (reads server CPU)
    GO ->                          sends every question at once
                     <- DONE       the last `done` (or the deadline) arrived
    (reads server CPU)
    CLOSE ->                       closes the sockets, writes the results file

Every content token of the test double is " t<emit time in ns>"; the receive time of
the frame that carries it gives the token's latency, however the relay coalesced it.
Per frame only the receive time and the text are kept while streaming; parsing waits
until the end so that the client spends as little as possible on the hot path.
"""

import argparse
import asyncio
import json
import re
import sys
import time

from websockets.asyncio.client import connect

TOKEN = re.compile(r" t(\d{19})")
ENDS = ('{"type":"done"', '{"type":"error"')


def wire_bytes(payload: int) -> int:
    """Bytes of one unmasked server->client text frame (RFC 6455 header + payload)."""
    return payload + (2 if payload < 126 else 4 if payload < 65536 else 10)


class Stream:
    def __init__(self, index: int, conversation: str, cookie: str):
        self.index = index
        self.conversation = conversation
        self.cookie = cookie
        self.ws = None
        self.error = ""
        self.t_send = 0
        self.frames: list[tuple[int, str]] = []


async def _open(spec: dict, stream: Stream) -> None:
    url = f"{spec['ws_url']}/ws/conversations/{stream.conversation}/"
    try:
        async with asyncio.timeout(spec.get("connect_timeout", 30)):
            stream.ws = await connect(
                url,
                origin=spec["origin"],
                additional_headers={"Cookie": stream.cookie} if stream.cookie else None,
                compression=None,  # browsers offer permessage-deflate; Daphne declines it
                max_size=2**24,
                ping_interval=None,
                close_timeout=2,
                open_timeout=None,
            )
            first = await stream.ws.recv()
        if not first.startswith('{"type":"snapshot"'):
            stream.error = f"unexpected first frame: {first[:120]}"
    except Exception as exc:  # refused, closed with 4401/4404, timed out...
        stream.error = f"connect: {exc!r}"[:300]


async def _ask(spec: dict, stream: Stream, deadline: float) -> None:
    if stream.ws is None or stream.error:
        return
    question = json.dumps(
        {"type": "send", "content": "bench", "model": spec["model"], "client_id": "b"}
    )
    frames = stream.frames
    ws = stream.ws
    clock = time.time_ns
    try:
        async with asyncio.timeout_at(deadline):
            stream.t_send = clock()
            await ws.send(question)
            async for text in ws:
                frames.append((clock(), text))
                if text.startswith(ENDS):
                    return
        stream.error = "socket closed before done"
    except TimeoutError:
        stream.error = "deadline"
    except Exception as exc:
        stream.error = repr(exc)[:300]


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    values = sorted(values)
    n = len(values)

    def pick(q: float) -> float:  # nearest rank
        return values[min(n - 1, max(0, int(q * n + 0.999999) - 1))]

    return {
        "n": n,
        "mean": sum(values) / n,
        "p50": pick(0.50),
        "p90": pick(0.90),
        "p99": pick(0.99),
        "max": values[-1],
    }


def summarise(spec: dict, streams: list[Stream]) -> dict:
    """Per-token latencies, time to first token, frames and bytes, per stream and overall."""
    expected = spec["tokens"]
    latencies_ms: list[float] = []
    ttft_ms: list[float] = []
    start_ms: list[float] = []
    walls_s: list[float] = []
    frames_per: list[int] = []
    deltas_per: list[int] = []
    bytes_per: list[int] = []
    delta_bytes_per: list[int] = []
    text_bytes_per: list[int] = []
    errors: dict[str, int] = {}
    missing_frames = reordered_frames = 0
    started = completed = 0
    tokens_total = 0
    first_send = last_done = None
    for stream in streams:
        if stream.error:
            key = stream.error.split(":")[0][:60]
            errors[key] = errors.get(key, 0) + 1
        if not stream.frames:
            continue
        seen: set[str] = set()
        first_token = done_at = None
        status = ""
        n_bytes = n_delta_bytes = n_text = n_deltas = 0
        seqs: set[int] = set()
        last_seq = last_done_seq = 0
        for received, text in stream.frames:
            size = len(text.encode())
            n_bytes += wire_bytes(size)
            frame = json.loads(text)
            kind = frame.get("type")
            if kind == "delta":
                n_deltas += 1
                seq = frame.get("seq", 0)
                reordered_frames += seq < last_seq
                last_seq = max(last_seq, seq)
                seqs.add(seq)
                n_delta_bytes += wire_bytes(size)
                content = frame.get("content", "")
                n_text += len(content.encode())
                for stamp in TOKEN.findall(content):
                    if stamp in seen:
                        continue  # a duplicate frame: count each token once
                    seen.add(stamp)
                    latencies_ms.append((received - int(stamp)) / 1e6)
                    if first_token is None:
                        first_token = received
            elif kind == "start":
                started += 1
                start_ms.append((received - stream.t_send) / 1e6)
            elif kind == "done":
                done_at = received
                status = frame.get("status", "")
                last_done_seq = frame.get("seq") or 0
            elif kind == "error":
                key = f"error frame {frame.get('code')}"
                errors[key] = errors.get(key, 0) + 1
        tokens_total += len(seen)
        # A delta the server numbered but this socket never got (before `done`).
        missing_frames += max(0, max(last_done_seq, last_seq) - len(seqs))
        if first_token is not None:
            ttft_ms.append((first_token - stream.t_send) / 1e6)
        if done_at is not None:
            walls_s.append((done_at - stream.t_send) / 1e9)
            last_done = max(last_done or done_at, done_at)
        first_send = min(first_send or stream.t_send, stream.t_send)
        if status == "complete" and len(seen) == expected:
            completed += 1
        elif status:
            key = f"done {status} with {len(seen)}/{expected} tokens"
            errors[key] = errors.get(key, 0) + 1
        frames_per.append(len(stream.frames))
        deltas_per.append(n_deltas)
        bytes_per.append(n_bytes)
        delta_bytes_per.append(n_delta_bytes)
        text_bytes_per.append(n_text)
    span_s = (last_done - first_send) / 1e9 if first_send and last_done else None

    def mean(values):
        return sum(values) / len(values) if values else None

    return {
        "streams": len(streams),
        "connected": sum(1 for s in streams if s.ws is not None),
        "started": started,
        "completed": completed,
        "errors": errors,
        "missing_delta_frames": missing_frames,
        "reordered_delta_frames": reordered_frames,
        "tokens_received": tokens_total,
        "start_frame_ms": _percentiles(start_ms),  # question sent -> `start` frame
        "ttft_ms": _percentiles(ttft_ms),
        "token_latency_ms": _percentiles(latencies_ms),
        "stream_wall_s": _percentiles(walls_s),
        "span_s": span_s,  # first question sent -> last answer done
        "delivered_tokens_per_s": tokens_total / span_s if span_s else None,
        "frames_per_answer": mean(frames_per),
        "delta_frames_per_answer": mean(deltas_per),
        "max_frames_per_answer": max(frames_per, default=None),
        "bytes_per_answer": mean(bytes_per),
        "delta_bytes_per_answer": mean(delta_bytes_per),
        "text_bytes_per_answer": mean(text_bytes_per),
    }


async def _line(loop) -> str:
    return (await loop.run_in_executor(None, sys.stdin.readline)).strip()


async def main_async(spec: dict, out: str) -> None:
    loop = asyncio.get_running_loop()
    limit = asyncio.Semaphore(spec.get("connect_concurrency", 50))

    async def open_one(stream):
        async with limit:
            await _open(spec, stream)

    warmup = spec.get("warmup")
    warm = {}
    if warmup:
        stream = Stream(-1, warmup["conversation"], warmup["cookie"])
        await _open(spec, stream)
        await _ask(spec, stream, loop.time() + spec["deadline_s"])
        if stream.ws is not None:
            await stream.ws.close()
        warm = {"error": stream.error, "frames": len(stream.frames)}

    streams = [Stream(i, s["conversation"], s["cookie"]) for i, s in enumerate(spec["streams"])]
    await asyncio.gather(*(open_one(s) for s in streams))
    ok = sum(1 for s in streams if not s.error)
    print(f"READY {ok} {len(streams) - ok}", flush=True)
    if await _line(loop) != "GO":
        return
    cpu0 = time.process_time()
    wall0 = time.monotonic()
    deadline = loop.time() + spec["deadline_s"]
    await asyncio.gather(*(_ask(spec, s, deadline) for s in streams))
    cpu1 = time.process_time()
    wall1 = time.monotonic()
    print("DONE", flush=True)
    await _line(loop)  # CLOSE (or EOF)
    await asyncio.gather(
        *(s.ws.close() for s in streams if s.ws is not None), return_exceptions=True
    )
    result = summarise(spec, streams)
    result["warmup"] = warm
    result["client_cpu_s"] = cpu1 - cpu0
    result["client_wall_s"] = wall1 - wall0
    with open(out, "w") as handle:
        json.dump(result, handle, indent=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="bench load client (driven by bench.run)")
    parser.add_argument("--spec", required=True, help="JSON file written by bench.run")
    parser.add_argument("--out", required=True, help="where to write the results (JSON)")
    args = parser.parse_args(argv)
    with open(args.spec) as handle:
        spec = json.load(handle)
    asyncio.run(main_async(spec, args.out))


if __name__ == "__main__":
    main()
