"""A herd on the default set-up: `./run.sh` as shipped (SQLite, in-memory layer, one
Daphne, Django's real password hasher), 200 people signing up and sending their first
message at once (bench/herd.py drives them). Every sign-up, every new chat and every
answer must succeed, and no socket may drop."""

import sqlite3

import pytest

from bench.herd import ANSWER, herd, shipped_app

pytestmark = pytest.mark.scale

PEOPLE = 200


@pytest.fixture
def app(tmp_path):
    with shipped_app(tmp_path) as running:
        yield running


async def test_two_hundred_sign_ups_and_first_messages_at_once_all_succeed(app):
    people = await herd(app.host, PEOPLE)

    problems = {p.name: p.problems for p in people if p.problems}
    assert not problems, f"{len(problems)} people had trouble: {list(problems.items())[:5]}"
    for person in people:
        done = person.frames[-1]
        assert done["type"] == "done" and done["status"] == "complete", (person.name, done)
        assert person.text() == "".join(ANSWER)
    with sqlite3.connect(app.database) as db:
        assert db.execute("SELECT count(*) FROM auth_user").fetchone()[0] == PEOPLE
        statuses = db.execute(
            "SELECT status, count(*) FROM chat_message WHERE role='assistant' GROUP BY status"
        ).fetchall()
    assert statuses == [("complete", PEOPLE)]
    assert "database is locked" not in app.log.read_text()
