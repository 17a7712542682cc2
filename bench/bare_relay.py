"""The baseline: the least a Python relay can do. NDJSON in (httpx, as the app), one
websocket frame per token out (the `websockets` library), no Django, no channel layer,
no database, no coalescing. Speaks just enough of docs/websocket.md for bench.client:
`snapshot` on connect, then `start`, one `delta` per token and `done` per `send`.

    .venv/bin/python -m bench.bare_relay --port 8765 --ollama http://127.0.0.1:11434
"""

import argparse
import asyncio
import json

import httpx
from websockets.asyncio.server import serve

STATS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
    "done_reason",
)
encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


async def relay(ws, http: httpx.AsyncClient, ollama: str) -> None:
    await ws.send('{"type":"snapshot","message":null}')
    async for raw in ws:
        ask = json.loads(raw)
        if ask.get("type") != "send":
            continue
        await ws.send(encode({"type": "start", "message": {"role": "assistant", "seq": 0}}))
        body = {
            "model": ask["model"],
            "stream": True,
            "messages": [{"role": "user", "content": ask["content"]}],
        }
        seq, stats = 0, {}
        async with http.stream("POST", ollama + "/api/chat", json=body) as response:
            async for line in response.aiter_lines():
                if not line:
                    continue
                chunk = json.loads(line)
                content = chunk.get("message", {}).get("content")
                if content:
                    seq += 1
                    await ws.send(encode({"type": "delta", "seq": seq, "content": content}))
                if chunk.get("done"):
                    stats = {key: chunk[key] for key in STATS if key in chunk}
        done = {"type": "done", "status": "complete", "error": "", "stats": stats, "seq": seq}
        await ws.send(encode(done))


async def main_async(host: str, port: int, ollama: str) -> None:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    timeout = httpx.Timeout(connect=5.0, read=None, write=30.0, pool=None)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
        handler = lambda ws: relay(ws, http, ollama.rstrip("/"))  # noqa: E731
        async with serve(handler, host, port, compression=None, ping_interval=None):
            print(f"bare relay listening on ws://{host}:{port}", flush=True)
            await asyncio.Future()  # until the process is terminated


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ollama", required=True, help="the test double's URL")
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.host, args.port, args.ollama))


if __name__ == "__main__":
    main()
