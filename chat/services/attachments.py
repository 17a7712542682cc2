"""Images attached to messages: checked and cleaned by chat.images, stored as files owned
by the conversation."""

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.http import Http404

from chat.images import ImageRefused, PreparedImage, prepare_image
from chat.models import Attachment
from chat.services.conversations import get_conversation_for_user


class AttachmentRefused(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def add_attachment(user: AbstractBaseUser, conversation_uuid, upload: UploadedFile) -> Attachment:
    """Keep an image for the user's next message in a conversation: checked, upright and
    without metadata (chat.images.prepare_image), stored under a name of ours.

    Raises Http404 for a conversation that is not the user's, AttachmentRefused (message
    for people, HTTP status) for a refused image or one image too many."""
    conversation = get_conversation_for_user(user, conversation_uuid)
    if upload.size > settings.MAX_IMAGE_BYTES:
        # Refused before it is read into memory (prepare_image checks again).
        raise AttachmentRefused(
            f"The image is too large ({upload.size / 1e6:.1f} MB; the limit is "
            f"{settings.MAX_IMAGE_BYTES / 1e6:.1f} MB).",
            status=413,
        )
    pending = Attachment.objects.filter(conversation=conversation, message=None).count()
    if pending >= settings.MAX_IMAGES_PER_MESSAGE:
        raise AttachmentRefused(
            f"At most {settings.MAX_IMAGES_PER_MESSAGE} images go with one message."
        )
    try:
        image = prepare_image(upload.read())
    except ImageRefused as exc:
        raise AttachmentRefused(exc.message, exc.status) from exc
    return store_image(conversation.pk, image)


def store_image(
    conversation_id: int, image: PreparedImage, message_id: int | None = None
) -> Attachment:
    """Save an image that chat.images.prepare_image already checked and cleaned, as the
    conversation's (and, for an imported history, its message's) attachment. The file
    is written at once: callers delete it if their transaction fails."""
    attachment = Attachment(
        conversation_id=conversation_id,
        message_id=message_id,
        content_type=image.content_type,
        size=len(image.data),
    )
    attachment.file.save("upload", ContentFile(image.data), save=False)
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
