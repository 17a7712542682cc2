"""A streamed job's bar never moves backwards and shows 100 % only once the job is done
(models_admin/progress.py), whatever order Ollama announces its layers in: on the socket,
in the database and on a page reloaded mid-pull."""

import asyncio
import re

import pytest
from channels.db import database_sync_to_async

from models_admin import pulls
from models_admin.models import Pull
from models_admin.progress import JobProgress, percent
from tests.models_admin_helpers import frames_until, open_models_socket, pull_ended

# A vision model as Ollama pulls it: the weights, the projector, the template, params.
LLAVA_LAYERS = [4_100_000_000, 624_000_000, 9_300_000, 100]
LLAVA_BYTES = sum(LLAVA_LAYERS)
JSON = {"accept": "application/json"}


def layer(digest: str, total: int, completed: int = 0) -> dict:
    """One progress line, as Ollama writes it (`completed` omitted while 0; §3)."""
    line = {"status": f"pulling {digest[:12]}", "digest": f"sha256:{digest}", "total": total}
    return {**line, "completed": completed} if completed else line


# --- the rule itself ------------------------------------------------------------------


def test_layers_announced_in_sequence_fill_the_bar_without_going_back():
    progress, shown = JobProgress(), []
    progress.feed({"status": "pulling manifest"}, 0.0)
    assert progress.fraction == 0 and progress.detail == "pulling manifest"
    for index, size in enumerate(LLAVA_LAYERS):
        for step in range(11):
            progress.feed(layer(f"{index:064x}", size, size * step // 10), index + step / 10)
            shown.append(progress.fraction)
    assert shown == sorted(shown)
    # The weights alone are not the whole model: 90 % after them (a tenth is held for
    # layers not announced yet), and the projector still moves the bar, to 96 %; it
    # never sits at 99 % while a layer of hundreds of MB downloads.
    assert [percent(shown[10]), percent(shown[21]), percent(shown[-1])] == [90, 96, 96]
    assert progress.percent == 96
    assert (progress.completed, progress.total) == (LLAVA_BYTES, LLAVA_BYTES)
    for status in ("verifying sha256 digest", "writing manifest", "success"):
        progress.feed({"status": status}, 5.0)  # no digest: the bar keeps its place
        assert progress.fraction == shown[-1]
    progress.finish()
    assert progress.fraction == 1 and progress.percent == 100


def test_a_changed_total_or_a_retried_part_never_moves_the_bar_back():
    progress = JobProgress()
    progress.feed(layer("a" * 64, 1000, 500), 0.0)
    assert progress.fraction == 0.4545  # 500 of 1000, and a tenth held for what may come
    progress.feed(layer("a" * 64, 4000, 600), 0.1)  # the layer turned out bigger
    assert progress.fraction == 0.4685 and (progress.completed, progress.total) == (600, 4000)
    progress.feed(layer("a" * 64, 4000, 3000), 0.2)
    assert progress.fraction == 0.8042
    # A push retries a part: `completed` steps back (ollama-api.md §10); bytes sent stay.
    progress.feed(layer("a" * 64, 4000, 1000), 0.3)
    assert progress.fraction == 0.8042 and progress.completed == 3000
    progress.feed(layer("a" * 64, 4000, 4000), 0.4)
    assert progress.fraction == 0.9441 and progress.percent == 94


def test_nonsense_in_a_line_is_ignored():
    progress = JobProgress()
    for line in (
        {"digest": "sha256:x", "total": True, "completed": True},
        {"digest": "sha256:x", "total": -5, "completed": 1},
        {"digest": "", "total": 10, "completed": 10},
        {"digest": "sha256:x", "total": "10", "completed": 10},
        {"digest": "sha256:y", "total": 10, "completed": "lots"},
        {"digest": "sha256:z", "total": 10, "completed": 50},
    ):
        progress.feed(line, 0.0)
    # Only the last two name a layer: y with nothing done, z capped at its total.
    assert (progress.completed, progress.total) == (10, 20)
    assert progress.fraction == 0.4545


def test_a_create_that_pulls_its_base_first_is_not_done_at_the_first_success():
    # /api/create sends the base's pull, its "success", then its own lines (§9): only
    # the job that owns the stream may call finish().
    progress = JobProgress(start=0.2)
    progress.feed(layer("b" * 64, 100, 100), 0.0)
    progress.feed({"status": "success"}, 0.1)
    progress.feed({"status": "using existing layer sha256:" + "b" * 64}, 0.2)
    assert progress.percent == 92 and not progress.finished


def test_percent_is_what_people_read():
    # 0.57 * 100 is 56.99... in floating point; the page's script counts the same way.
    cases = {0: 0, 0.0099: 0, 0.57: 57, 0.999: 99, 1: 100}
    assert {fraction: percent(fraction) for fraction in cases} == cases


# --- pulls through the double ---------------------------------------------------------


@pytest.fixture
def fast_pulls(settings):
    settings.PULL_FRAME_MS = 5  # nearly every line becomes a frame: any step back shows
    settings.PULL_CHECKPOINT_SECONDS = 0.02
    settings.MODELS_POLL_SECONDS = 30


@pytest.fixture
async def staff(async_client, staff_user):
    await async_client.aforce_login(staff_user)
    return async_client


@pytest.fixture(autouse=True)
async def _no_pull_outlives_its_test():
    yield
    tasks = [job.task for job in list(pulls._jobs.values()) if job.task]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def watch(staff, staff_user, name: str) -> tuple[list[dict], list[Pull], str]:
    """Pull `name`; every `pull` frame a page got, and the row as saved every ~10 ms."""
    socket = await open_models_socket(staff_user)
    response = await staff.post("/models/pull/", {"model": name}, headers=JSON)
    pull_id = response.json()["pull"]["id"]
    get = database_sync_to_async(Pull.objects.get)
    saved: list[Pull] = []

    async def sample():
        while True:
            saved.append(await get(uuid=pull_id))
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    frames = await frames_until(socket, pull_ended, timeout=15)
    sampler.cancel()
    await asyncio.gather(sampler, return_exceptions=True)
    saved.append(await get(uuid=pull_id))
    await socket.disconnect()
    return [f["pull"] for f in frames if f["type"] == "pull"], saved, pull_id


def assert_never_backwards(shown: list[float], running: list[bool]) -> None:
    assert shown == sorted(shown), f"the bar went back: {shown}"
    assert all(f < 1 for f, still in zip(shown, running, strict=True) if still)


@pytest.mark.django_db(transaction=True)
async def test_a_pull_of_layers_announced_in_sequence_never_goes_back(
    fake, fast_pulls, staff, staff_user
):
    fake.pullable["llava:7b"] = LLAVA_LAYERS
    fake.pull_delay = 0.01
    progress, saved, _ = await watch(staff, staff_user, "llava:7b")

    running = [p["status"] == "running" for p in progress]
    assert_never_backwards([p["fraction"] for p in progress], running)
    # Every byte was there before "success": the page saw 96 %, not 100 %.
    assert max(p["fraction"] for p in progress if p["status"] == "running") == 0.9616
    assert max(p["total"] for p in progress) == LLAVA_BYTES
    final = progress[-1]
    assert (final["status"], final["fraction"]) == ("done", 1)
    assert final["completed"] == final["total"] == LLAVA_BYTES

    assert len(saved) > 5
    assert_never_backwards([row.fraction for row in saved], [r.status == "running" for r in saved])
    assert (saved[-1].status, saved[-1].fraction, saved[-1].percent) == ("done", 1, 100)


@pytest.mark.django_db(transaction=True)
async def test_a_layer_whose_total_changes_does_not_move_the_bar_back(
    fake, fast_pulls, staff, staff_user
):
    digest = "c" * 64
    fake.pull_scripts["grows:latest"] = [
        layer(digest, 1_000, 500),
        layer(digest, 4_000, 600),  # now it is four times as big: 15 %, not 50 %
        layer(digest, 4_000, 2_000),
        layer(digest, 4_000, 3_000),
        {"status": "verifying sha256 digest"},
    ]
    fake.pull_delay = 0.05
    progress, saved, _ = await watch(staff, staff_user, "grows")
    shown = [p["fraction"] for p in progress if p["total"]]
    assert_never_backwards(shown, [p["status"] == "running" for p in progress if p["total"]])
    assert set(shown) == {0.4545, 0.4685, 0.6643, 0.8042, 1}  # never 600 / 4000 = 0.15
    assert progress[-1]["fraction"] == 1 and saved[-1].fraction == 1


@pytest.mark.django_db(transaction=True)
async def test_a_failed_pull_never_shows_100(fake, fast_pulls, staff, staff_user):
    fake.pull_scripts["broken:latest"] = [
        layer("d" * 64, 4_100_000_000, 2_050_000_000),
        layer("d" * 64, 4_100_000_000, 4_100_000_000),
        layer("e" * 64, 624_000_000, 0),
        {"error": "digest mismatch, file must be downloaded again"},
    ]
    fake.pull_delay = 0.02
    progress, saved, pull_id = await watch(staff, staff_user, "broken")
    shown = [p["fraction"] for p in progress]
    assert shown == sorted(shown) and max(shown) == 0.9091
    final = progress[-1]
    assert final["status"] == "failed" and final["fraction"] == 0.9091
    assert "digest mismatch" in final["error"]
    assert all(row.fraction < 1 for row in saved)
    assert (saved[-1].status, saved[-1].percent) == ("failed", 90)

    # A reload shows the saved bar, short of full.
    page = (await staff.get("/models/")).content.decode()
    row = page.split(f'data-pull-id="{pull_id}"', 1)[1].split("</li>", 1)[0]
    assert re.search(r'<progress class="pull-bar" max="1" value="0.9091">90%</progress>', row)
    assert "90% · 4.1 GB of 4.7 GB" in row and "100%" not in row
