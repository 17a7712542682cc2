"""The Ollama test double speaks Ollama's wire protocol: routes, streams, errors, state."""

import http.client
import json
import re
import threading
import time

import httpx
import pytest

from tests.fake_ollama import FakeOllama, Reply, parse_go_duration, valid_model_name

USER = [{"role": "user", "content": "why is the sky blue?"}]


@pytest.fixture
def fake():
    with FakeOllama() as server:
        server.pull_delay = 0.0
        yield server


@pytest.fixture
def client(fake):
    with httpx.Client(base_url=fake.url, timeout=5) as c:
        yield c


def lines(response: httpx.Response) -> list[dict]:
    return [json.loads(line) for line in response.iter_lines() if line]


def stream(client: httpx.Client, path: str, body: dict) -> tuple[httpx.Response, list[dict]]:
    with client.stream("POST", path, json=body) as response:
        return response, lines(response)


# ---- basics -----------------------------------------------------------------------------


def test_root_version_and_http_errors(client, fake):
    root = client.get("/")
    assert (root.status_code, root.text) == (200, "Ollama is running")
    assert client.head("/").status_code == 200
    fake.version = "0.13.0"
    assert client.get("/api/version").json() == {"version": "0.13.0"}
    missing = client.get("/api/nothing")
    assert (missing.status_code, missing.text) == (404, "404 page not found")
    wrong = client.get("/api/chat")
    assert (wrong.status_code, wrong.text) == (405, "405 method not allowed")
    error = client.post("/api/chat", json={"model": "ghost", "messages": USER})
    assert error.headers["content-type"] == "application/json; charset=utf-8"
    assert not error.content.endswith(b"\n")


def test_tags_lists_installed_models(client, fake):
    models = client.get("/api/tags").json()["models"]
    names = {m["name"] for m in models}
    assert names == {"llama3.2:latest", "qwen3:latest", "llava:latest"}
    llama = next(m for m in models if m["name"] == "llama3.2:latest")
    assert llama["model"] == "llama3.2:latest"
    assert isinstance(llama["size"], int) and len(llama["digest"]) == 64
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:]{8}(\.\d+)?(Z|[+-]\d\d:\d\d)", llama["modified_at"])
    assert llama["details"]["family"] == "llama"
    assert llama["details"]["parameter_size"] == "3.2B"
    assert llama["details"]["quantization_level"] == "Q4_K_M"
    assert client.head("/api/tags").status_code == 200

    fake.add_model("Mistral", capabilities=["completion"], family="mistral")
    assert "Mistral:latest" in {m["name"] for m in client.get("/api/tags").json()["models"]}
    assert fake.remove_model("mistral")
    fake.models.clear()
    assert client.get("/api/tags").json() == {"models": []}


def test_show_shapes_and_errors(client):
    shown = client.post("/api/show", json={"model": "qwen3"}).json()
    assert shown["capabilities"] == ["completion", "thinking", "tools"]
    assert shown["model_info"]["qwen3.context_length"] == 40960
    assert shown["details"]["family"] == "qwen3"
    for key in ("modelfile", "parameters", "template", "license", "modified_at"):
        assert shown[key]
    assert "vision" in client.post("/api/show", json={"name": "LLaVA"}).json()["capabilities"]

    missing = client.post("/api/show", json={"model": "ghost"})
    assert missing.status_code == 404
    assert missing.json() == {"error": "model 'ghost:latest' not found"}
    empty = client.post("/api/show", json={})
    assert (empty.status_code, empty.json()) == (400, {"error": "model is required"})
    no_body = client.post("/api/show")
    assert (no_body.status_code, no_body.json()) == (400, {"error": "missing request body"})


def test_keep_alive_connections_are_reused(fake):
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    conn.connect()
    sock = conn.sock
    for _ in range(2):
        conn.request("POST", "/api/chat", body=json.dumps({"model": "llama3.2", "messages": USER}))
        response = conn.getresponse()
        assert response.getheader("Transfer-Encoding") == "chunked"
        assert json.loads(response.read().splitlines()[-1])["done"] is True
        conn.request("GET", "/api/version")
        assert json.loads(conn.getresponse().read()) == {"version": "0.12.6"}
    assert conn.sock is sock  # http.client reconnects if the server closes: it did not
    conn.close()


# ---- chat -------------------------------------------------------------------------------


def test_chat_streams_deltas_then_final_metrics(client, fake):
    fake.push_reply(Reply(content="Blue light scatters <most>.", delay=0.005))
    response, chunks = stream(client, "/api/chat", {"model": "Llama3.2", "messages": USER})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["transfer-encoding"] == "chunked"
    *deltas, final = chunks
    assert [c["message"]["content"] for c in deltas] == ["Blue", " light", " scatters", " <most>."]
    assert all(c["model"] == "Llama3.2" and c["done"] is False for c in deltas)
    assert all(c["created_at"].endswith("Z") and "thinking" not in c["message"] for c in deltas)
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["message"] == {"role": "assistant", "content": ""}
    assert final["eval_count"] == 4
    assert final["prompt_eval_count"] == 5
    assert final["eval_duration"] >= 15_000_000  # three 5 ms pauses, measured
    for key in ("total_duration", "load_duration", "prompt_eval_duration"):
        assert final[key] > 0
    assert fake.last_chat() == {"model": "Llama3.2", "messages": USER}
    assert fake.requests[-1].finished and not fake.requests[-1].disconnected


def test_a_held_reply_waits_mid_answer_until_the_test_resumes_it(client, fake):
    resume = threading.Event()
    fake.push_reply(Reply(content=["One", " two", " three"], hold_after=1, resume=resume))
    with client.stream(
        "POST", "/api/chat", json={"model": "llama3.2", "messages": USER}
    ) as response:
        chunks = response.iter_lines()
        assert json.loads(next(chunks))["message"]["content"] == "One"
        timer = threading.Timer(0.3, resume.set)
        started = time.monotonic()
        timer.start()
        rest = [json.loads(line) for line in chunks if line]
    assert time.monotonic() - started >= 0.25  # nothing came until it was resumed
    assert [c["message"]["content"] for c in rest[:-1]] == [" two", " three"]
    assert rest[-1]["done"] is True


def test_chat_bytes_escape_markup_like_go(fake):
    fake.push_reply(Reply(content=["<b>&"]))
    with (
        httpx.Client() as c,
        c.stream(
            "POST", fake.url + "/api/chat", json={"model": "llama3.2", "messages": USER}
        ) as response,
    ):
        raw = b"".join(response.iter_raw())
    assert b"\\u003cb\\u003e\\u0026" in raw


def test_replies_are_queued_fifo_and_per_model(client, fake):
    fake.push_reply(Reply(content="first"))
    fake.push_reply(Reply(content="second"))
    fake.push_reply(Reply(content="for qwen"), model="qwen3")
    fake.default_reply = Reply(content="fallback")

    def answer(model: str) -> str:
        body = {"model": model, "messages": USER, "stream": False, "think": False}
        return client.post("/api/chat", json=body).json()["message"]["content"]

    assert answer("llama3.2") == "first"
    assert answer("qwen3:latest") == "for qwen"
    assert answer("qwen3") == "second"
    assert answer("llama3.2") == "fallback"
    assert len(fake.chat_requests()) == 4


def test_stream_false_concatenates(client, fake):
    fake.push_reply(Reply(content="The sky is blue.", thinking="Rayleigh, surely."))
    response = client.post("/api/chat", json={"model": "qwen3", "messages": USER, "stream": False})
    body = response.json()
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert body["message"] == {
        "role": "assistant",
        "content": "The sky is blue.",
        "thinking": "Rayleigh, surely.",
    }
    assert body["done"] is True and body["eval_count"] == 6


def test_thinking_deltas_come_first(client, fake):
    fake.push_reply(Reply(content="Four.", thinking="Two plus two."))
    _, chunks = stream(client, "/api/chat", {"model": "qwen3", "messages": USER, "think": True})
    thinking = [c["message"]["thinking"] for c in chunks if "thinking" in c["message"]]
    assert thinking == ["Two", " plus", " two."]
    assert all(c["message"]["content"] == "" for c in chunks[:3])
    assert [c["message"]["content"] for c in chunks[3:-1]] == ["Four."]

    fake.push_reply(Reply(content="Four.", thinking="Two plus two."))
    _, chunks = stream(client, "/api/chat", {"model": "qwen3", "messages": USER, "think": False})
    assert not any("thinking" in c["message"] for c in chunks)

    refused = client.post("/api/chat", json={"model": "llama3.2", "messages": USER, "think": True})
    assert refused.status_code == 400
    assert refused.json() == {"error": '"llama3.2" does not support thinking'}
    bad = client.post("/api/chat", json={"model": "qwen3", "messages": USER, "think": "lots"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("invalid think value")


def test_legacy_think_puts_tags_in_content(client, fake):
    fake.push_reply(Reply(content="Four.", thinking="Two plus two.", legacy_think=True))
    _, chunks = stream(client, "/api/chat", {"model": "qwen3", "messages": USER})
    assert not any("thinking" in c["message"] for c in chunks)
    assert chunks[0]["message"]["content"] == "<think>"
    text = "".join(c["message"]["content"] for c in chunks)
    assert text == "<think>Two plus two.</think>\n\nFour."


def test_generate_streams_response_and_context(client, fake):
    fake.push_reply(Reply(content="Hi there", thinking="hm"))
    _, chunks = stream(client, "/api/generate", {"model": "qwen3", "prompt": "hello"})
    assert chunks[0]["thinking"] == "hm" and chunks[0]["response"] == ""
    assert [c["response"] for c in chunks[1:-1]] == ["Hi", " there"]
    assert chunks[-1]["done"] is True and chunks[-1]["context"]
    empty = client.post("/api/generate", json={"model": "", "prompt": "x"})
    assert (empty.status_code, empty.json()) == (404, {"error": "model '' not found"})


def test_tool_calls_come_in_their_own_chunk_when_tools_were_sent(client, fake):
    call = {"name": "get_weather", "arguments": {"city": "Tokyo"}}
    fake.push_reply(Reply(content="", tool_calls=[call]))
    tools = [{"type": "function", "function": {"name": "get_weather"}}]
    body = {"model": "llama3.2", "messages": USER, "tools": tools}
    _, chunks = stream(client, "/api/chat", body)
    [tool_call] = chunks[0]["message"]["tool_calls"]
    assert tool_call["id"].startswith("call_") and len(tool_call["id"]) == 13
    assert tool_call["function"] == {"index": 0, **call}
    assert chunks[-1]["done"] is True


def test_timestamp_tokens(client, fake):
    fake.push_reply(Reply(timestamps=True, tokens=5))
    before = time.time_ns()
    _, chunks = stream(client, "/api/chat", {"model": "llama3.2", "messages": USER})
    stamps = [int(c["message"]["content"][2:]) for c in chunks[:-1]]
    assert len(stamps) == 5 and before <= stamps[0] <= stamps[-1] <= time.time_ns()
    assert all(c["message"]["content"].startswith(" t") for c in chunks[:-1])


# ---- chat errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"model": "ghost", "messages": USER}, 404, "model 'ghost' not found"),
        ({"model": "bad name!", "messages": USER}, 400, "invalid model name"),
        ({"model": "foo:", "messages": USER}, 400, "invalid model name"),
        ({"messages": USER}, 400, "model is required"),
        ({"model": "", "messages": USER}, 400, "model is required"),
        ({"model": "llama3.2", "keep_alive": "abc"}, 400, 'time: invalid duration "abc"'),
        ({"model": "llama3.2", "keep_alive": "300"}, 400, 'time: missing unit in duration "300"'),
        ({"model": 5}, 400, "json: cannot unmarshal number into Go struct field "),
        (
            {"model": "llava", "messages": USER, "tools": [{"type": "function"}]},
            400,
            "registry.ollama.ai/library/llava:latest does not support tools",
        ),
    ],
)
def test_chat_request_errors(client, body, status, error):
    response = client.post("/api/chat", json=body)
    assert response.status_code == status
    assert response.json()["error"].startswith(error)


def test_body_errors(client):
    empty = client.post("/api/chat")
    assert (empty.status_code, empty.json()) == (400, {"error": "missing request body"})
    broken = client.post("/api/chat", content=b'{"model": bad}')
    assert broken.status_code == 400
    assert broken.json()["error"] == "invalid character 'b' looking for beginning of value"
    cut = client.post("/api/chat", content=b'{"model": "llama3.2"')
    assert cut.json() == {"error": "unexpected EOF"}


def test_busy_answers_503(client, fake):
    fake.busy = True
    for path, body in [
        ("/api/chat", {"model": "llama3.2", "messages": USER}),
        ("/api/generate", {"model": "llama3.2", "prompt": "hi"}),
        ("/api/pull", {"model": "tinyllama"}),
    ]:
        response = client.post(path, json=body)
        assert response.status_code == 503
        assert response.json() == {
            "error": "server busy, please try again.  maximum pending requests exceeded"
        }


def test_scripted_status_fails_before_streaming(client, fake):
    fake.push_reply(Reply(status=500, error="model runner has unexpectedly stopped"))
    response = client.post("/api/chat", json={"model": "llama3.2", "messages": USER})
    assert response.status_code == 500
    assert response.json() == {"error": "model runner has unexpectedly stopped"}


def test_error_line_mid_stream(client, fake):
    fake.push_reply(Reply(content=["a", "b", "c"], error_after=2, error="runner died"))
    response, chunks = stream(client, "/api/chat", {"model": "llama3.2", "messages": USER})
    assert response.status_code == 200
    assert [c.get("message", {}).get("content") for c in chunks[:2]] == ["a", "b"]
    assert chunks[2:] == [{"error": "runner died"}]


def test_drop_after_breaks_the_stream(client, fake):
    fake.push_reply(Reply(content=["a", "b", "c"], drop_after=2))
    got = []
    with pytest.raises(httpx.RemoteProtocolError):
        with client.stream("POST", "/api/chat", json={"model": "llama3.2", "messages": USER}) as r:
            for line in r.iter_lines():
                got.append(json.loads(line)["message"]["content"])
    assert got == ["a", "b"]
    assert not fake.requests[-1].finished


def test_client_closing_mid_stream_is_recorded(client, fake):
    fake.push_reply(Reply(content=[f" t{i}" for i in range(200)], delay=0.02))
    with client.stream("POST", "/api/chat", json={"model": "llama3.2", "messages": USER}) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i == 2:
                break
    closed_at = time.monotonic()
    assert fake.wait_for_disconnect(timeout=1)
    assert time.monotonic() - closed_at < 1
    record = fake.requests[-1]
    assert record.disconnected and not record.finished


def test_a_finished_stream_is_not_a_disconnect(client, fake):
    fake.push_reply(Reply(content="short", delay=0.001))
    stream(client, "/api/chat", {"model": "llama3.2", "messages": USER})
    assert not fake.wait_for_disconnect(timeout=0.05)
    assert fake.wait_for(lambda: fake.requests[-1].finished, timeout=1)


# ---- load, unload, ps -------------------------------------------------------------------


def test_load_and_unload_change_ps(client, fake):
    assert client.get("/api/ps").json() == {"models": []}
    loaded = client.post("/api/chat", json={"model": "llama3.2", "messages": []})
    assert loaded.json()["done_reason"] == "load" and loaded.json()["done"] is True
    client.post("/api/chat", json={"model": "qwen3", "keep_alive": -1})
    client.post("/api/generate", json={"model": "llava", "keep_alive": "1h30m"})

    models = client.get("/api/ps").json()["models"]
    assert [m["name"] for m in models] == ["qwen3:latest", "llava:latest", "llama3.2:latest"]
    entry = models[2]
    for key in ("model", "size", "digest", "details", "expires_at", "size_vram", "context_length"):
        assert key in entry
    assert models[0]["expires_at"].startswith("23")  # "forever" is ~292 years away

    unloaded = client.post("/api/chat", json={"model": "llama3.2", "keep_alive": 0})
    assert unloaded.json()["done_reason"] == "unload"
    assert fake.running_models() == ["qwen3:latest", "llava:latest"]
    ghost = client.post("/api/chat", json={"model": "ghost", "keep_alive": "0s"})
    assert ghost.status_code == 404


def test_ps_reports_the_loaded_context_capped_at_the_models_own(client, fake):
    def loaded(model: str, **options) -> int:
        body = {"model": model, "messages": USER, "stream": False, "options": options}
        client.post("/api/chat", json=body)
        entry = next(m for m in client.get("/api/ps").json()["models"] if m["name"] == model)
        return entry["context_length"]

    assert loaded("llama3.2:latest") == 4096  # the server's default, not the model's 131,072
    assert loaded("llama3.2:latest", num_ctx=2048) == 2048
    assert loaded("llava:latest", num_ctx=65536) == 32768  # llava was made for 32,768


def test_a_reply_may_report_a_full_context_window(client, fake):
    fake.push_reply(Reply(content="Hi.", prompt_eval_count=2048))
    _, chunks = stream(client, "/api/chat", {"model": "llama3.2", "messages": USER})
    assert chunks[-1]["done"] is True and chunks[-1]["prompt_eval_count"] == 2048


def test_chat_marks_model_running_and_keep_alive_zero_unloads_after(client, fake):
    client.post("/api/chat", json={"model": "llama3.2", "messages": USER, "stream": False})
    assert fake.running_models() == ["llama3.2:latest"]
    body = {"model": "llama3.2", "messages": USER, "stream": False, "keep_alive": 0}
    assert client.post("/api/chat", json=body).status_code == 200
    assert fake.running_models() == []


def test_expired_models_leave_ps(client, fake):
    client.post("/api/chat", json={"model": "llama3.2", "keep_alive": 0.05})
    assert fake.running_models() == ["llama3.2:latest"]
    time.sleep(0.1)
    assert client.get("/api/ps").json() == {"models": []}


# ---- pull, delete, copy -----------------------------------------------------------------


def test_pull_streams_progress_and_installs(client, fake):
    response, chunks = stream(client, "/api/pull", {"model": "tinyllama"})
    assert response.status_code == 200
    assert chunks[0] == {"status": "pulling manifest"}
    assert [c["status"] for c in chunks[-3:]] == [
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    progress = [c for c in chunks if "digest" in c]
    first = progress[0]
    assert first["status"] == "pulling " + first["digest"][7:19]
    assert len(first["digest"]) == len("sha256:") + 64
    assert first["total"] == 40_000_000 and "completed" not in first
    assert progress[10]["completed"] == 40_000_000
    assert {c["total"] for c in progress} == {40_000_000, 2_000, 500}
    assert "tinyllama:latest" in {m["name"] for m in client.get("/api/tags").json()["models"]}


def test_pull_unknown_and_invalid(client):
    _, chunks = stream(client, "/api/pull", {"model": "ghost"})
    assert chunks == [
        {"status": "pulling manifest"},
        {"error": "pull model manifest: file does not exist"},
    ]
    single = client.post("/api/pull", json={"model": "ghost", "stream": False})
    assert single.status_code == 500
    bad = client.post("/api/pull", json={"model": "bad name!"})
    assert (bad.status_code, bad.json()) == (400, {"error": "invalid model name"})
    done = client.post("/api/pull", json={"model": "tinyllama", "stream": False})
    assert done.json() == {"status": "success"}


def test_cancelled_pull_installs_nothing(client, fake):
    fake.pull_delay = 0.02
    with client.stream("POST", "/api/pull", json={"model": "tinyllama"}) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i == 3:
                break
    assert fake.wait_for_disconnect(timeout=1)
    assert "tinyllama:latest" not in fake.models


def test_delete(client, fake):
    deleted = client.request("DELETE", "/api/delete", json={"model": "llava"})
    assert (deleted.status_code, deleted.content) == (200, b"")
    assert fake.models.keys() == {"llama3.2:latest", "qwen3:latest"}
    again = client.request("DELETE", "/api/delete", json={"model": "llava"})
    assert (again.status_code, again.json()) == (404, {"error": "model 'llava' not found"})
    bad = client.request("DELETE", "/api/delete", json={"model": "a/b/c/d"})
    assert (bad.status_code, bad.json()) == (400, {"error": 'name "a/b/c/d" is invalid'})


def test_copy(client, fake):
    copied = client.post("/api/copy", json={"source": "llama3.2", "destination": "backup"})
    assert (copied.status_code, copied.content) == (200, b"")
    assert "backup:latest" in fake.models
    missing = client.post("/api/copy", json={"source": "ghost", "destination": "x"})
    assert (missing.status_code, missing.json()) == (404, {"error": 'model "ghost" not found'})
    bad = client.post("/api/copy", json={"source": "-x", "destination": "y"})
    assert bad.json() == {"error": 'source "-x" is invalid'}
    bad = client.post("/api/copy", json={"source": "llama3.2", "destination": "y:"})
    assert bad.json() == {"error": 'destination "y:" is invalid'}


# ---- lifecycle and helpers --------------------------------------------------------------


def test_restart_on_the_same_port_and_reset(fake):
    port = fake.port
    with httpx.Client(base_url=fake.url, timeout=2) as c:
        assert c.get("/").status_code == 200
        fake.stop()
        with pytest.raises(httpx.ConnectError):
            c.get("/")
        fake.start()
        assert fake.port == port and c.get("/").status_code == 200
    fake.busy = True
    fake.remove_model("qwen3")
    fake.push_reply(Reply(content="queued"))
    fake.reset()
    assert fake.requests == [] and not fake.busy and "qwen3:latest" in fake.models
    with httpx.Client(base_url=fake.url, timeout=2) as c:
        body = {"model": "llama3.2", "messages": USER, "stream": False}
        assert c.post("/api/chat", json=body).json()["message"]["content"].startswith("Hello!")


def test_rate_paces_tokens(client, fake):
    fake.push_reply(Reply(content=[f" w{i}" for i in range(6)], rate=100))
    started = time.monotonic()
    stream(client, "/api/chat", {"model": "llama3.2", "messages": USER})
    assert 0.045 <= time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("llama3.2", True),
        ("library/llama3.2:3b-q4_K_M", True),
        ("myhost:5000/ns/model:tag", True),
        ("http://myhost/ns/model", True),
        ("hf.co/user/repo", True),
        ("", False),
        ("foo:", False),
        ("/x", False),
        ("a/b/c/d", False),
        ("-bad", False),
        ("has space", False),
        ("ns.with.dot/model", False),
        ("x" * 81, False),
    ],
)
def test_valid_model_name(name, valid):
    assert valid_model_name(name) is valid


def test_go_durations():
    assert parse_go_duration("1h30m") == 5_400_000_000_000
    assert parse_go_duration("1.5s") == 1_500_000_000
    assert parse_go_duration("-1m") == -60_000_000_000
    assert parse_go_duration("0") == 0
    assert parse_go_duration("250ms") + parse_go_duration("10us") == 250_010_000
    for bad, message in [
        ("abc", 'time: invalid duration "abc"'),
        ("300", 'time: missing unit in duration "300"'),
        ("5d", 'time: unknown unit "d" in duration "5d"'),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_go_duration(bad)
