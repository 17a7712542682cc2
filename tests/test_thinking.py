"""Reasoning split out of streamed content (relay/thinking.py, relay/answer_text.py): what a
person ends up seeing as thinking and as the answer, however the deltas are cut."""

import itertools

import pytest

from relay.answer_text import AnswerText
from relay.thinking import Split, ThinkSplitter

LONE = "Okay, the user asks something.\n</think>\n\nFinal answer."
TAGGED = "<think>\nTwo and two.\n</think>\n\nFour."


def shown(deltas, *, native=(), before="", reasoned=False):
    """(thinking, answer) after streaming `deltas` as content, the way the answer engine
    does it: through the splitter into the published text, one frame per delta, applied
    as a browser applies them. `native`: thinking deltas Ollama sent itself, first."""
    splitter = ThinkSplitter(before, reasoned=reasoned)
    text = AnswerText(before)
    thinking, answer = "", before

    def apply(split: Split):
        nonlocal thinking, answer
        text.take(split, 0.0)
        frame = text.publish()
        if frame is None:
            return
        if frame.get("replace"):
            thinking, answer = frame.get("thinking", ""), frame.get("content", "")
        else:
            thinking += frame.get("thinking", "")
            answer += frame.get("content", "")

    for delta in native:
        apply(splitter.feed("", delta))
    for delta in deltas:
        apply(splitter.feed(delta))
    apply(splitter.flush())
    # What a snapshot (a second tab, a reload) shows: the same.
    assert (text.thinking(), text.content()) == (thinking, answer)
    return thinking, answer


def cuts(text: str, pieces: int):
    """Every way to cut `text` into `pieces` consecutive parts."""
    for points in itertools.combinations(range(1, len(text)), pieces - 1):
        bounds = (0, *points, len(text))
        yield [text[a:b] for a, b in itertools.pairwise(bounds)]


def test_a_lone_closing_tag_makes_the_text_before_it_the_thinking():
    deltas = ["Okay, the user asks", " something.\n</think>\n\n", "Final answer."]
    assert shown(deltas) == ("Okay, the user asks something.", "Final answer.")


@pytest.mark.parametrize("pieces", [2, 3])
def test_a_lone_closing_tag_cut_anywhere_gives_the_same(pieces):
    for deltas in cuts(LONE, pieces):
        assert shown(deltas) == ("Okay, the user asks something.", "Final answer."), deltas


def test_a_lone_closing_tag_one_character_at_a_time():
    assert shown(list(LONE)) == ("Okay, the user asks something.", "Final answer.")


def test_whitespace_before_the_reasoning_is_not_part_of_it():
    deltas = ["\n\n", " Okay, the user asks", " something.\n", "</think>", "\n\n", "Final answer."]
    assert shown(deltas) == ("Okay, the user asks something.", "Final answer.")


def test_a_lone_closing_tag_after_a_long_reasoning_moves_all_of_it():
    words = [f" step{i}" for i in range(3000)]
    thinking, answer = shown([*words, "\n</think>\n\n", "Final", " answer."])
    assert thinking == "".join(words).strip()
    assert answer == "Final answer."


def test_a_lone_closing_tag_at_the_very_start_leaves_no_thinking():
    assert shown(["</think>\n\n", "Final answer."]) == ("", "Final answer.")
    assert shown(["\n</thi", "nk>\n", "\nFinal answer."]) == ("", "Final answer.")


@pytest.mark.parametrize("pieces", [2, 3])
def test_a_think_block_in_content_cut_anywhere_is_split_out(pieces):
    for deltas in cuts(TAGGED, pieces):
        assert shown(deltas) == ("Two and two.", "Four."), deltas


def test_a_think_block_after_leading_whitespace_is_split_out():
    assert shown(["\n ", "<think>", "Hmm.", "</think>", "Four."]) == ("Hmm.", "Four.")


@pytest.mark.parametrize(
    "answer",
    [
        "Plain answer with a < b and x<y.\n",
        "Ends with a partial tag <thi",
        "Ends with a partial closing tag </thi",
        "Models wrap reasoning in <think> and </think> tags.",
        "Close the block with `</think>` when you are done.",
        "```html\n`</think>`\n```",
        "  Indented start, trailing spaces  \n\n",
    ],
)
def test_an_answer_without_a_think_block_is_left_exactly_as_it_is(answer):
    for deltas in cuts(answer, 2):
        assert shown(deltas) == ("", answer), deltas


def test_only_the_first_closing_tag_counts():
    deltas = ["Reasoning.", "</think>", "Answer mentions </think> too."]
    assert shown(deltas) == ("Reasoning.", "Answer mentions </think> too.")


def test_content_is_never_reinterpreted_when_ollama_sends_thinking_itself():
    thinking, answer = shown(
        ["Okay, so", " the answer.\n</think>\n\n", "More."], native=["The user", " asks."]
    )
    assert thinking == "The user asks."
    assert answer == "Okay, so the answer.\n</think>\n\nMore."
    # A <think> at the start of content is not split either.
    assert shown(["<think>x</think>y"], native=["t"]) == ("t", "<think>x</think>y")


def test_a_continued_answer_that_was_reasoning_moves_whole():
    assert shown([" something.\n</think>\n\n", "Final answer."], before="Okay, the user asks") == (
        "Okay, the user asks something.",
        "Final answer.",
    )


def test_a_continued_answer_that_already_has_thinking_is_left_alone():
    text = " more.\n</think>\n\nTail."
    assert shown([text], before="Answer", reasoned=True) == ("", "Answer" + text)


def test_held_back_text_is_released_at_the_end_of_the_stream():
    # A tail that might have become a tag, and whitespace, come back when nothing follows.
    assert shown(["Answer\n", "\n</th"]) == ("", "Answer\n\n</th")
    assert shown(["<think>unfinished reasoning\n"]) == ("unfinished reasoning", "")
