"""Images attached to messages: checked by their bytes, stored as files owned by the
conversation."""

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.http import Http404

from chat.models import Attachment
from chat.services.conversations import get_conversation_for_user

# Recognised by their first bytes, never by the name or the browser's claimed type.
SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}


class AttachmentRefused(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def sniff(head: bytes) -> str | None:
    for signature, content_type in SIGNATURES.items():
        if head.startswith(signature):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def add_attachment(user: AbstractBaseUser, conversation_uuid, upload: UploadedFile) -> Attachment:
    conversation = get_conversation_for_user(user, conversation_uuid)
    if upload.size > settings.MAX_IMAGE_BYTES:
        raise AttachmentRefused(
            f"The image is too large ({upload.size / 1e6:.1f} MB; the limit is "
            f"{settings.MAX_IMAGE_BYTES / 1e6:.1f} MB).",
            status=413,
        )
    head = upload.read(16)
    upload.seek(0)
    content_type = sniff(head)
    if content_type is None:
        raise AttachmentRefused("Only PNG, JPEG, GIF and WebP images can be attached.")
    pending = Attachment.objects.filter(conversation=conversation, message=None).count()
    if pending >= settings.MAX_IMAGES_PER_MESSAGE:
        raise AttachmentRefused(
            f"At most {settings.MAX_IMAGES_PER_MESSAGE} images go with one message."
        )
    attachment = Attachment(conversation=conversation, content_type=content_type, size=upload.size)
    attachment.file.save("upload", upload, save=False)
    attachment.save()
    return attachment


def get_attachment_for_user(
    user: AbstractBaseUser, conversation_uuid, attachment_uuid
) -> Attachment:
    conversation = get_conversation_for_user(user, conversation_uuid)
    try:
        return conversation.attachments.get(uuid=attachment_uuid)
    except (Attachment.DoesNotExist, ValueError):
        raise Http404 from None


def remove_attachment(user: AbstractBaseUser, conversation_uuid, attachment_uuid) -> None:
    """Drop an image that was attached but not sent (sent ones belong to the history)."""
    attachment = get_attachment_for_user(user, conversation_uuid, attachment_uuid)
    if attachment.message_id is not None:
        raise AttachmentRefused("This image was sent with a message and stays with it.", 409)
    name = attachment.file.name
    attachment.delete()
    storage = attachment.file.storage
    transaction.on_commit(lambda: storage.delete(name))
