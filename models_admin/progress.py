"""How far a streamed Ollama job has got: the one rule for every job's progress bar.

Pull, push and create stream the same `ProgressResponse` lines (ollama-api.md §3 for
pull, §10 for push, §9 "the stream" for create): a `status`, and for the layer being
transferred its `digest`, `total` and `completed` bytes (`completed` omitted while 0).
Ollama announces a layer only when it starts on it, so the bytes summed over the layers
seen so far make a poor bar: when the 624 MB layer follows the 4.1 GB one, done/total
drops from 100 % to 87 %, and the bar has shown 100 % while the job still runs. Push
even sends a smaller `completed` when a part is retried (§10), and create emits a
pull's `success` before its own lines (§9), so no line can mean "finished".

The rule, kept here so that every job follows it:

- bytes are tracked per digest; a layer's `completed` never goes back while its `total`
  stays the same (a new `total` starts that layer's count again);
- the bar moves by the share of the *remaining* bytes that each line reports done, with
  a reserve for layers not announced yet (RESERVE of the bytes known): while one layer
  of T bytes downloads it reads completed / (1.1 T), and when a new layer makes the job
  longer the bar slows down instead of jumping back. The 4.1 GB, 624 MB, 9.3 MB, 100 B
  pull reads 91 % after its first layer and 96 % after its second, rather than sitting
  at 99 % from the first layer's end. It never moves backwards: bytes that a layer
  loses (a new `total` for it) move nothing;
- it stays below 1 (99 %) until the job itself says it has finished (`finish()`), which
  only the job's owner can tell (a pull at `success`, a create at the end of its stream);
- lines without a digest ("pulling manifest", "verifying sha256 digest", "writing
  manifest") change the status text only, never the bar.
"""

from collections import deque

# The highest fraction before the job has finished: shown as 99 % (see `percent`).
CAP = 0.999
# Bytes of layers not announced yet, as a share of the bytes known (see the rule above).
RESERVE = 0.1
# Frames and rows carry the fraction rounded to this many decimals (a 10,000-step bar).
DECIMALS = 4
SPEED_WINDOW = 5.0  # seconds of progress the speed is measured over


def percent(fraction: float) -> int:
    """The whole percent people read for `fraction` (0..1): 0.999 is 99, only 1 is 100.

    Rounded to DECIMALS first, as static/models_admin/pulls.js does, so that the page and
    the server agree (0.57 is 57, though 0.57 * 100 is 56.99... in floating point)."""
    return round(fraction * 10**DECIMALS) // 10 ** (DECIMALS - 2)


class JobProgress:
    """The progress of one streamed job: feed it Ollama's lines, read `fraction` for the
    bar, `completed`/`total` (bytes over the layers announced) and `rate()` for the text.

    `fraction` starts from `start` (e.g. a saved value), so a job that is picked up again
    does not move backwards either."""

    def __init__(self, start: float = 0.0) -> None:
        self.detail = ""  # Ollama's last status line
        self.completed = 0
        self.total = 0
        self.fraction = min(max(float(start), 0.0), CAP)
        self._left = 1.0 - self.fraction  # unrounded share of the bar still to go
        self.finished = False
        self._layers: dict[str, tuple[int, int]] = {}  # digest -> (completed, total)
        self._samples: deque[tuple[float, int]] = deque()

    def feed(self, line: dict, now: float) -> None:
        """Take one line of the stream; `now` is a monotonic clock in seconds."""
        status = line.get("status")
        if isinstance(status, str) and status:
            self.detail = status
        digest, total = line.get("digest"), line.get("total")
        if not (isinstance(digest, str) and digest and _is_count(total) and total > 0):
            return  # no layer named: the bar keeps its place
        done = line.get("completed") or 0  # omitted while 0
        done = min(max(done, 0), total) if _is_count(done) else 0
        before = self._layers.get(digest)
        if before is not None and before[1] == total:
            done = max(done, before[0])  # a retried part (push) does not undo bytes sent
        self._layers[digest] = (done, total)
        gained = sum(layer[0] for layer in self._layers.values()) - self.completed
        self.completed += gained
        self.total = sum(layer[1] for layer in self._layers.values())
        if gained > 0 and not self.finished:
            # What is left of the bar shrinks as the bytes left do (module docstring).
            left_after = self.total - self.completed + RESERVE * self.total
            self._left *= left_after / (left_after + gained)
            self.fraction = max(self.fraction, round(min(1.0 - self._left, CAP), DECIMALS))
        self._samples.append((now, self.completed))
        while self._samples and self._samples[0][0] < now - SPEED_WINDOW:
            self._samples.popleft()

    def finish(self) -> None:
        """The job has finished successfully: the bar is full, every byte is there."""
        self.finished = True
        self.fraction = 1.0
        self.completed = self.total

    @property
    def percent(self) -> int:
        return percent(self.fraction)

    def rate(self) -> tuple[float | None, float | None]:
        """(bytes per second, seconds left), or None where not known yet."""
        if len(self._samples) < 2:
            return None, None
        (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
        if t1 - t0 < 0.2:
            return None, None
        speed = max(0.0, (c1 - c0) / (t1 - t0))
        left = self.total - self.completed
        eta = left / speed if speed > 0 else None
        return speed, eta


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
