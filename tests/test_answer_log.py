"""The log of a live answer (relay/answer_log.py), as written frame by frame and read back
when its process died: the text rebuilt from it is the text the tabs were shown. The
Redis side runs for real in tests/scale (test_scale.py, test_redis_restart.py); here the
entries are the ones the writer queues, read back as XRANGE returns them."""

from relay import answer_log
from relay.answer_text import AnswerText
from relay.thinking import Split, ThinkSplitter


class Pipeline:
    """Stands in for a redis-py pipeline: keeps the one stream the writer writes."""

    def __init__(self, stream: list):
        self.stream = stream
        self.results = []

    def delete(self, key):
        self.stream.clear()
        self.results.append(1)

    def xadd(self, key, fields, nomkstream=False):
        if nomkstream and not self.stream:
            self.results.append(None)
            return
        entry_id = f"{len(self.stream) + 1}-0".encode()
        encoded = {k.encode(): str(v).encode() for k, v in fields.items()}
        self.stream.append((entry_id, encoded))
        self.results.append(entry_id)

    def expire(self, key, seconds):
        self.results.append(True)


def stream_answer(tokens: list[str], stream: list, before: str = "") -> AnswerText:
    """Run tokens through the splitter and the answer text as the generation does, one
    frame per token, logging each frame; returns the text as published."""
    text = AnswerText(before)
    writer = answer_log.Writer("a1b2")
    log_frame(writer, stream, 0, None, text)
    splitter = ThinkSplitter(before)
    seq = 0
    for token in [*tokens, None]:
        text.take(splitter.feed(token) if token is not None else splitter.flush(), 0.0)
        fields = text.publish()
        if fields is None:
            continue
        seq += 1
        log_frame(writer, stream, seq, fields, text)
    return text


def log_frame(writer, stream, seq, fields, text):
    """As relay/frames.py does: the whole text only when a base is due."""
    whole = (text.content(), text.thinking()) if writer.base_due() else None
    pipeline = Pipeline(stream)
    writer.queue(pipeline, seq, fields, whole)
    writer.written(pipeline.results)


def test_the_text_is_rebuilt_from_the_logged_frames():
    stream = []
    text = stream_answer([" The", " sky", " is", " blue."], stream)
    rebuilt = answer_log.rebuild(stream)
    assert (
        (rebuilt.content, rebuilt.thinking)
        == (" The sky is blue.", "")
        == (
            text.content(),
            text.thinking(),
        )
    )
    assert rebuilt.whole and rebuilt.seq == 4


def test_a_continued_answer_starts_from_its_saved_text():
    stream = []
    stream_answer([" and", " more."], stream, before="Half an answer")
    assert answer_log.rebuild(stream).content == "Half an answer and more."


def test_a_replace_frame_turns_what_was_shown_into_thinking_as_tabs_do():
    # A lone </think>: everything shown as the answer so far was reasoning.
    stream = []
    tokens = ["Okay, the user asks", " something.\n</think>\n\n", "Final", " answer."]
    text = stream_answer(tokens, stream)
    assert any(b"r" in fields for _, fields in stream)  # a `replace` frame was logged
    rebuilt = answer_log.rebuild(stream)
    assert (rebuilt.content, rebuilt.thinking) == (text.content(), text.thinking())
    assert rebuilt.content == "Final answer."
    assert rebuilt.thinking == "Okay, the user asks something."


def test_a_long_answer_is_logged_afresh_from_its_whole_text_every_so_often():
    stream = []
    tokens = [f" t{i}" for i in range(answer_log.BASE_EVERY * 2 + 7)]
    text = stream_answer(tokens, stream)
    assert len(stream) <= answer_log.BASE_EVERY + 1  # kept short
    assert b"b" in stream[0][1] and int(stream[0][1][b"s"]) > 0
    assert answer_log.rebuild(stream).content == text.content() == "".join(tokens)


def test_after_a_failed_write_the_next_frame_logs_the_whole_text():
    stream = []
    text = AnswerText()
    writer = answer_log.Writer("a1b2")
    log_frame(writer, stream, 0, None, text)
    for seq, token in enumerate([" one", " two", " three"], start=1):
        text.take(Split(content=token), 0.0)
        fields = text.publish()
        if seq == 2:
            writer.failed()  # the round trip with frame 2 failed: it may be missing
            continue
        log_frame(writer, stream, seq, fields, text)
    assert [int(fields[b"s"]) for _, fields in stream] == [3]  # a base, whole
    assert answer_log.rebuild(stream).content == " one two three"


def test_a_stream_redis_lost_is_started_again_from_a_base():
    stream = []
    text = AnswerText()
    writer = answer_log.Writer("a1b2")
    log_frame(writer, stream, 0, None, text)
    stream.clear()  # Redis restarted empty
    text.take(Split(content=" one"), 0.0)
    log_frame(writer, stream, 1, text.publish(), text)
    assert stream == []  # a delta never starts a stream without its base...
    text.take(Split(content=" two"), 0.0)
    log_frame(writer, stream, 2, text.publish(), text)
    assert answer_log.rebuild(stream).content == " one two"  # ...the next frame does


def test_an_entry_written_twice_counts_once():
    base = (b"1-0", {b"b": b"1", b"s": b"0", b"c": b"", b"t": b""})
    delta = (b"2-0", {b"s": b"1", b"c": b" hi"})
    again = (b"3-0", {b"s": b"1", b"c": b" hi"})  # a retried round trip
    assert answer_log.rebuild([base, delta, again]).content == " hi"


def test_a_missing_entry_ends_the_text_there_and_says_so():
    base = (b"1-0", {b"b": b"1", b"s": b"0", b"c": b"A", b"t": b""})
    later = (b"2-0", {b"s": b"2", b"c": b" C"})
    rebuilt = answer_log.rebuild([base, later])
    assert rebuilt.content == "A" and not rebuilt.whole


def test_without_a_base_nothing_is_rebuilt():
    assert answer_log.rebuild([(b"1-0", {b"s": b"1", b"c": b" hi"})]) is None
    assert answer_log.rebuild([]) is None
