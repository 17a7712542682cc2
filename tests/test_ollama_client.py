"""ollama_layer/client.py against the Ollama test double: streams and each kind of error."""

import pytest

from ollama_layer.client import OllamaClient, OllamaError, OllamaUnavailable, public_url
from ollama_layer.names import is_valid_model_name
from tests.fake_ollama import Reply


async def collect(stream):
    return [chunk async for chunk in stream]


async def test_chat_stream_yields_deltas_then_the_final_chunk(fake):
    fake.push_reply(Reply(content="Blue light scatters."))
    chunks = await collect(
        OllamaClient(fake.url).chat_stream(
            "llama3.2",
            [{"role": "user", "content": "Why?"}],
            options={"temperature": 0.2},
            keep_alive="5m",
        )
    )
    assert "".join(c["message"]["content"] for c in chunks) == "Blue light scatters."
    assert chunks[-1]["done"] is True and chunks[-1]["eval_count"] == 3
    body = fake.last_chat()
    assert body["options"] == {"temperature": 0.2} and body["keep_alive"] == "5m"


async def test_an_unknown_model_raises_ollama_error_with_its_message(fake):
    with pytest.raises(OllamaError) as error:
        await collect(
            OllamaClient(fake.url).chat_stream("ghost", [{"role": "user", "content": "x"}])
        )
    assert error.value.status == 404
    assert error.value.message == "model 'ghost' not found"


async def test_a_bad_request_raises_ollama_error(fake):
    with pytest.raises(OllamaError) as error:
        await collect(
            OllamaClient(fake.url).chat_stream(
                "llama3.2", [{"role": "user", "content": "x"}], think=True
            )
        )
    assert error.value.status == 400
    assert "does not support thinking" in error.value.message


async def test_an_error_line_mid_stream_raises_after_the_text_so_far(fake):
    fake.push_reply(Reply(content=["a", "b", "c"], error_after=2, error="runner died"))
    seen = []
    with pytest.raises(OllamaError) as error:
        async for chunk in OllamaClient(fake.url).chat_stream(
            "llama3.2", [{"role": "user", "content": "x"}]
        ):
            seen.append(chunk["message"]["content"])
    assert seen == ["a", "b"]
    assert error.value.status is None and error.value.message == "runner died"


async def test_a_dropped_connection_raises_unavailable(fake):
    fake.push_reply(Reply(content=["a", "b", "c"], drop_after=1))
    with pytest.raises(OllamaUnavailable, match="lost"):
        await collect(
            OllamaClient(fake.url).chat_stream("llama3.2", [{"role": "user", "content": "x"}])
        )


async def test_busy_raises_ollama_error_503(fake):
    fake.busy = True
    with pytest.raises(OllamaError) as error:
        await collect(
            OllamaClient(fake.url).chat_stream("llama3.2", [{"role": "user", "content": "x"}])
        )
    assert error.value.status == 503 and "server busy" in error.value.message


async def test_an_unreachable_server_names_the_url_only_for_staff_and_never_its_secret():
    with pytest.raises(OllamaUnavailable) as error:
        await OllamaClient("http://ops:s3cret@127.0.0.1:9/?token=t0k3n").version()
    # str() is for anyone and for logs: no address; `detailed` (staff) has no secrets.
    assert str(error.value) == "The Ollama server is not reachable"
    assert error.value.detailed == "Ollama is not reachable at http://127.0.0.1:9/"
    assert error.value.host == "http://127.0.0.1:9/"


async def test_a_lost_connection_names_the_url_only_for_staff(fake):
    fake.push_reply(Reply(content=["a", "b", "c"], drop_after=1))
    with pytest.raises(OllamaUnavailable) as error:
        await collect(
            OllamaClient(fake.url).chat_stream("llama3.2", [{"role": "user", "content": "x"}])
        )
    assert str(error.value) == "The connection to Ollama was lost"
    assert error.value.detailed == f"The connection to Ollama at {fake.url} was lost"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://gpu1:11434", "http://gpu1:11434"),
        ("http://user:secret@gpu1:11434", "http://gpu1:11434"),
        ("https://user:p%40ss@ollama.internal/base?token=abc#frag", "https://ollama.internal/base"),
        ("http://user@[::1]:11434", "http://[::1]:11434"),
        ("http://a:b@[::1:11434/x?k=v", "http://[::1:11434/x"),  # unparseable: stripped anyway
    ],
)
def test_public_url_drops_credentials_and_tokens(url, shown):
    assert public_url(url) == shown


async def test_a_slow_first_token_is_waited_for(fake):
    fake.push_reply(Reply(content="late", first_delay=1.2))
    chunks = await collect(
        OllamaClient(fake.url).chat_stream("llama3.2", [{"role": "user", "content": "x"}])
    )
    assert chunks[0]["message"]["content"] == "late"


async def test_leaving_the_stream_early_closes_the_connection(fake):
    fake.push_reply(Reply(content=[f" t{i}" for i in range(100)], delay=0.02))
    stream = OllamaClient(fake.url).chat_stream("llama3.2", [{"role": "user", "content": "x"}])
    async for _chunk in stream:
        break
    await stream.aclose()
    assert fake.wait_for_disconnect(timeout=2)


async def test_models_version_and_show(fake):
    client = OllamaClient(fake.url)
    assert await client.version() == "0.12.6"
    names = [m["name"] for m in await client.list_models()]
    assert "llama3.2:latest" in names
    assert await client.running_models() == []
    shown = await client.show("llava")
    assert "vision" in shown["capabilities"]
    with pytest.raises(OllamaError) as error:
        await client.show("ghost")
    assert error.value.status == 404


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("llama3.2", True),
        ("llama3.2:latest", True),
        ("library/llama3.2:3b-q4_K_M", True),
        ("registry.ollama.ai/library/llama3.2:latest", True),
        ("myhost:5000/ns/model:tag", True),
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
def test_model_names_follow_ollamas_rules(name, valid):
    assert is_valid_model_name(name) is valid
