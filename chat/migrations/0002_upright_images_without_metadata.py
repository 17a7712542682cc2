"""Images stored before uploads went through chat.images: turn them upright and strip
their metadata (GPS and the rest) the same way, so that old photos reach Ollama the way
the user sees them too. Files that can't be read (missing, damaged) are left as they are."""

from django.core.files.base import ContentFile
from django.db import migrations


def clean_stored_images(apps, schema_editor):
    # The current code on purpose: the same cleaning as new uploads, and it is idempotent.
    from chat.images import ImageRefused, prepare_image

    Attachment = apps.get_model("chat", "Attachment")
    storage = Attachment._meta.get_field("file").storage
    # Names first (SQLite cursors don't mix with writes to the same table). Alternates of
    # an edited question share their file: one rewrite serves them all.
    names = set(Attachment.objects.values_list("file", flat=True))
    for name in sorted(names):
        try:
            with storage.open(name, "rb") as handle:
                data = handle.read()
            image = prepare_image(data)
        except (OSError, ImageRefused):
            continue
        if image.data == data:
            continue
        storage.delete(name)
        saved = storage.save(name, ContentFile(image.data))
        Attachment.objects.filter(file=name).update(
            file=saved, size=len(image.data), content_type=image.content_type
        )


class Migration(migrations.Migration):
    # One file at a time, each committed: a large media folder needs no huge transaction.
    atomic = False

    dependencies = [("chat", "0001_initial")]

    operations = [migrations.RunPython(clean_stored_images, migrations.RunPython.noop)]
