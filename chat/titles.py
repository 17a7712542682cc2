"""Automatic titles: once the first answer of a conversation is complete, the
conversation's model names it in a few words, in the background.

The answer never waits for this: it runs as its own task after the `done` frame went out.
Until the model has answered (or when it fails) the title stays the start of the first
message. A rename by the user always wins: the title is saved only while `title_source`
is still "message", by a conditional UPDATE, so a rename that lands while the model is
thinking is never overwritten.
"""

import asyncio
import logging
import re

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from chat import protocol, services
from chat.models import Conversation, Message
from chat.text import clean_line
from ollama_layer import hosts
from ollama_layer.client import OllamaError, OllamaUnavailable
from relay import live
from relay.thinking import answer_of

log = logging.getLogger(__name__)

TITLE_CHARS = 60
QUESTION_CHARS = 1500  # of the first question, in the prompt
ANSWER_CHARS = 600  # of the start of the answer
# A title is a few tokens; the cap keeps a chatty (or still thinking) model short.
TITLE_TOKENS = 64
# The client has no read timeout (answers may think for minutes); a title may not.
TIMEOUT_SECONDS = 120

PROMPT = (
    "Write a short title for the conversation below: at most 6 words, in the language "
    "of the question, no quotes, no punctuation at the end. Reply with the title only.\n\n"
    "Question:\n{question}\n\nStart of the answer:\n{answer}"
)

# Running title tasks, referenced so that asyncio cannot collect one mid-request.
_tasks: set[asyncio.Task] = set()

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_PREFIX = re.compile(r"^(?:conversation\s+|chat\s+)?title\s*[:：\-–—]\s*", re.IGNORECASE)
_BULLET = re.compile(r"^(?:#+|[-*•>]|\d+[.)])\s+")
_QUOTES = "\"'`“”‘’«»„‚‹›「」『』"
_END_PUNCTUATION = ".!?:;,。！？：；、…"


def clean_title(text: str) -> str:
    """The model's reply as a title: one line, no quotes, Markdown or "Title:" prefix,
    no final punctuation, at most TITLE_CHARS characters. "" when nothing is left."""
    text = _THINK.sub("", answer_of(text or ""))  # an unclosed <think> too
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    for _ in range(3):  # each pass may uncover more: **"Title: x".**
        before = line
        line = _BULLET.sub("", line)
        line = re.sub(r"[*_`]{1,3}", "", line)
        line = _PREFIX.sub("", line)
        line = line.strip().strip(_QUOTES).strip().rstrip(_END_PUNCTUATION).strip()
        if line == before:
            break
    line = clean_line(line)  # as every title: no control or bidi override characters
    if len(line) > TITLE_CHARS:
        cut = line[:TITLE_CHARS]
        space = cut.rfind(" ")
        line = (cut[:space] if space > TITLE_CHARS // 2 else cut).rstrip(_END_PUNCTUATION + " ")
    return line


def after_answer(message: Message) -> None:
    """Called when an answer completed (chat.answers.MessageTarget.finished): start naming its conversation
    if this was its first exchange. Returns at once; never raises."""
    if not settings.AUTO_TITLES:
        return
    try:
        task = asyncio.get_running_loop().create_task(
            _name_conversation(message.id), name=f"title-{message.conversation_id}"
        )
    except Exception:
        log.exception("could not start the title of conversation %s", message.conversation_id)
        return
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


@database_sync_to_async
def _first_exchange(message_id: int) -> tuple[Conversation, str, str] | None:
    """(conversation, first question, answer) when this answer is the first one of a
    conversation still titled from its first message; None otherwise."""
    answer = (
        Message.objects.select_related("conversation", "parent")
        .filter(id=message_id, role=Message.Role.ASSISTANT)
        .first()
    )
    if answer is None or answer.parent is None or answer.parent.parent_id is not None:
        return None
    if answer.conversation.title_source != Conversation.TitleSource.MESSAGE:
        return None
    return answer.conversation, answer.parent.content, answer.content


async def _ask_model(conversation: Conversation, question: str, answer: str) -> str:
    prompt = PROMPT.format(question=question[:QUESTION_CHARS], answer=answer[:ANSWER_CHARS])
    request = services.ollama_request(conversation)
    # The conversation's own options (num_ctx above all) so that Ollama does not reload the
    # model for this request; no format: a title is plain text.
    options = {**(conversation.options or {}), "num_predict": TITLE_TOKENS}
    reply = await asyncio.wait_for(
        (await hosts.client_for(conversation.model)).chat(
            conversation.model,
            [{"role": "user", "content": prompt}],
            think=False,
            options=options,
            keep_alive=request["keep_alive"],
        ),
        TIMEOUT_SECONDS,
    )
    message = reply.get("message") if isinstance(reply, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    return clean_title(content if isinstance(content, str) else "")


async def _name_conversation(message_id: int) -> None:
    try:
        found = await _first_exchange(message_id)
        if found is None:
            return
        conversation, question, answer = found
        title = await _ask_model(conversation, question, answer)
        if not title:
            return  # keep the title taken from the first message
        if await database_sync_to_async(services.save_model_title)(conversation.id, title):
            await publish_title(conversation.uuid, title)
    except (OllamaError, OllamaUnavailable, TimeoutError) as exc:
        log.info("no title for the answer %s: %s", message_id, exc)
    except Exception:
        log.exception("naming the conversation of answer %s failed", message_id)


async def publish_title(conversation_uuid, title: str) -> None:
    """Tell every tab open on the conversation its new title (`title` frame)."""
    frame = live.encode({"type": "title", "title": title})
    await get_channel_layer().group_send(
        protocol.group_name(conversation_uuid), {"type": "chat.frame", "text": frame}
    )
