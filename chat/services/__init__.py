"""Every write to the chat tables goes through this package: plain sync functions, each
one transaction, split by topic. Async callers wrap them in `database_sync_to_async`.

Import from here (`from chat import services`); the submodules are an implementation
detail.
"""

from chat.services.accounts import approve_users, can_chat, register_user
from chat.services.answers import (
    AnswerRefused,
    StartedAnswer,
    checkpoint_answer,
    continue_answer,
    edit_question,
    finish_answer,
    regenerate_answer,
    start_answer,
)
from chat.services.attachments import (
    AttachmentRefused,
    add_attachment,
    get_attachment_for_user,
    remove_attachment,
)
from chat.services.branches import branch, history_for, select_alternate
from chat.services.conversations import (
    create_conversation,
    get_conversation_for_user,
    ollama_request,
    save_defaults,
    save_settings,
    user_defaults,
)
from chat.services.history import (
    HistoryRefused,
    delete_conversation,
    open_at_message,
    rename_conversation,
    save_model_title,
    set_archived,
    set_pinned,
)
from chat.services.importer import ImportResult, import_conversations
from chat.services.recovery import INTERRUPTED_ERROR, recover_stale_answers

__all__ = [
    "HistoryRefused",
    "delete_conversation",
    "ImportResult",
    "import_conversations",
    "open_at_message",
    "rename_conversation",
    "save_model_title",
    "set_archived",
    "set_pinned",
    "INTERRUPTED_ERROR",
    "AnswerRefused",
    "AttachmentRefused",
    "add_attachment",
    "get_attachment_for_user",
    "remove_attachment",
    "save_defaults",
    "save_settings",
    "user_defaults",
    "StartedAnswer",
    "approve_users",
    "branch",
    "can_chat",
    "checkpoint_answer",
    "continue_answer",
    "create_conversation",
    "edit_question",
    "finish_answer",
    "get_conversation_for_user",
    "history_for",
    "ollama_request",
    "recover_stale_answers",
    "regenerate_answer",
    "register_user",
    "select_alternate",
    "start_answer",
]
