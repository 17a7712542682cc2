"""The images of an imported message (chat.imports): base64 in the file, checked and
cleaned as uploads are (chat.images.prepare_image) before anything is saved, then stored
by chat.services.importer (chat.services.attachments.store_image).

Each image is `{"name", "content_type", "size", "data"}` as chat.exports writes it. Only
`data` is used: the type comes from the bytes, the name and size are the file's claims.
"""

import base64
import binascii
from dataclasses import dataclass

from django.conf import settings

from chat.images import ImageRefused, PreparedImage, prepare_image

MAX_NAME_CHARS = 200


class BadImage(ValueError):
    """An image of the file can't be imported; `message` says where and why."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class ImportedImage:
    image: PreparedImage  # checked, upright, without metadata; its type from the bytes
    where: str  # "Conversation 2, message 3, image 1", for errors found when saving


def parse_images(listed, where: str) -> tuple[list[ImportedImage], int]:
    """The images of one message that carry their bytes, and how many are listed without
    (exports made before images were included). `listed` is the message's "images"
    value (None or a list), `where` names the message ("Conversation 2, message 3").

    Checked as uploads are: at most MAX_IMAGES_PER_MESSAGE, at most MAX_IMAGE_BYTES
    (measured on the base64 text before decoding it, then on the bytes), then decoded,
    turned upright and stripped of metadata by chat.images.prepare_image. Raises BadImage.
    """
    listed = listed or []
    if not isinstance(listed, list):
        raise BadImage(f"{where}: images must be a list.")
    if len(listed) > settings.MAX_IMAGES_PER_MESSAGE:
        raise BadImage(
            f"{where}: at most {settings.MAX_IMAGES_PER_MESSAGE} images go with one message."
        )
    limit = settings.MAX_IMAGE_BYTES
    too_large = f"is too large (the limit is {limit / 1e6:.1f} MB)."
    images, missing = [], 0
    for number, image in enumerate(listed, 1):
        here = f"{where}, image {number}"
        if not isinstance(image, dict):
            raise BadImage(f"{here} must be an object.")
        name = image.get("name", "")
        if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
            raise BadImage(f"{here}: name must be text of at most {MAX_NAME_CHARS} characters.")
        encoded = image.get("data")
        if encoded is None:
            missing += 1
            continue
        if not isinstance(encoded, str):
            raise BadImage(f"{here}: data must be base64 text.")
        if len(encoded) > (limit + 2) // 3 * 4:  # 4 characters for 3 bytes
            raise BadImage(f"{here} {too_large}")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise BadImage(f"{here}: data is not valid base64.") from None
        if len(data) > limit:
            raise BadImage(f"{here} {too_large}")
        try:
            prepared = prepare_image(data)
        except ImageRefused as exc:
            raise BadImage(f"{here}: {exc.message}") from None
        images.append(ImportedImage(prepared, here))
    return images, missing
