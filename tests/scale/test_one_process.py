"""One Daphne process as `./run.sh` ships it (SQLite, in-memory channel layer, no Redis),
killed mid-answer: without Redis there is no log of the frames, so the answer keeps its
last checkpoint, which is at most CHECKPOINT_SECONDS (1 s) old."""

import sqlite3

import pytest

from bench.herd import shipped_env
from tests.fake_ollama import FakeOllama, Reply
from tests.scale.conftest import Account, Cluster
from tests.scale.tabs import Tab

pytestmark = pytest.mark.scale

TOKENS_PER_SECOND = 50
TOKENS = [f" t{i}" for i in range(2000)]


@pytest.fixture
def one_process(tmp_path):
    ollama = FakeOllama(default_reply=Reply(content=TOKENS[:300], rate=TOKENS_PER_SECOND)).start()
    env = shipped_env(tmp_path, ollama.url) | {"AUTO_TITLES": "false"}
    server = Cluster(env, tmp_path)
    server.database = tmp_path / "db.sqlite3"
    server.start(0)
    try:
        yield server
    finally:
        server.stop_all()
        ollama.stop()


async def test_a_killed_single_process_loses_at_most_its_last_checkpoint(one_process):
    person = Account(one_process.url(0))
    conversation = person.new_conversation()
    tab = await Tab(one_process, 0, person, conversation).open()
    await tab.send({"type": "send", "content": "Count", "model": "llama3.2"})
    await tab.wait_for(lambda: tab.latest() and len(tab.latest().content.split()) > 120)
    answer_id = tab.latest().id
    shown = tab.answers[answer_id].content
    one_process.kill(0)
    shown = max(shown, tab.answers[answer_id].content, key=len)

    one_process.start(0)  # the page's socket comes back to the restarted process
    await tab.wait_for(lambda: tab.settled(answer_id), timeout=15)
    answer = tab.answers[answer_id]
    assert answer.status == "interrupted" and "server stopped" in answer.error
    # What is saved is what the tab showed, but for at most the last second of it.
    assert answer.content and shown.startswith(answer.content)
    lost = len(shown.split()) - len(answer.content.split())
    assert 0 <= lost <= TOKENS_PER_SECOND * 1.2, f"{lost} tokens lost"

    # Not busy: the next message is answered.
    await tab.send({"type": "send", "content": "Again", "model": "llama3.2"})
    await tab.wait_for(lambda: tab.latest().id != answer_id and tab.settled(tab.latest().id))
    await tab.close()
    with sqlite3.connect(one_process.database) as db:
        left = db.execute("SELECT count(*) FROM chat_message WHERE status = 'streaming'")
        assert left.fetchone()[0] == 0
