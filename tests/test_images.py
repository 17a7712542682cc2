"""Images from phones and elsewhere (chat/images.py): stored and sent upright, without
EXIF, GPS, XMP, comments, text chunks or colour profiles; bombs and damaged files refused
with a clear message. Images are made here with Pillow, carrying what phones write."""

import base64
import importlib
import io

import pytest
from channels.db import database_sync_to_async
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image, ImageCms, ImageSequence, PngImagePlugin

from chat.images import ImageRefused, prepare_image
from chat.models import Attachment
from tests.conftest import connect, receive, receive_until

RED, BLUE = (220, 20, 20), (20, 20, 220)
WIDTH, HEIGHT = 60, 40  # as the user sees the photo: red left half, blue right half
GPS_IFD, ORIENTATION = 0x8825, 0x0112
GPS = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPSLatitude...
SECRET = "secret-comment-from-the-phone"


def halves(size: tuple[int, int], red: str) -> Image.Image:
    """An image whose `red` half (left, right, top or bottom) is red, the rest blue."""
    width, height = size
    image = Image.new("RGB", size, BLUE)
    box = {
        "left": (0, 0, width // 2, height),
        "right": (width // 2, 0, width, height),
        "top": (0, 0, width, height // 2),
        "bottom": (0, height // 2, width, height),
    }[red]
    image.paste(RED, box)
    return image


# How a camera stores the photo above for each EXIF Orientation (the tag says how to turn
# the stored pixels for display; written out here, not computed with Pillow's own table).
STORED_AS = {
    1: halves((WIDTH, HEIGHT), "left"),
    3: halves((WIDTH, HEIGHT), "right"),  # upside down
    6: halves((HEIGHT, WIDTH), "bottom"),  # display turns it 90° clockwise
    8: halves((HEIGHT, WIDTH), "top"),  # display turns it 90° anticlockwise
}


def exif_of(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x0110] = "Phone 15"
    if orientation:
        exif[ORIENTATION] = orientation
    exif.get_ifd(GPS_IFD).update(GPS)
    return exif


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def phone_jpeg(orientation: int, trailer: bytes = b"") -> bytes:
    out = io.BytesIO()
    STORED_AS[orientation].save(
        out,
        "JPEG",
        quality=95,
        exif=exif_of(orientation),
        comment=SECRET.encode(),
        xmp=b"<x:xmpmeta><gps>48.85,2.35</gps></x:xmpmeta>",
        icc_profile=srgb_profile(),
    )
    return out.getvalue() + trailer


def is_red(pixel) -> bool:
    return pixel[0] > 150 and pixel[1] < 90 and pixel[2] < 90


def is_blue(pixel) -> bool:
    return pixel[2] > 150 and pixel[0] < 90 and pixel[1] < 90


def assert_upright(data: bytes) -> None:
    """What the user saw: 60x40, red on the left, blue on the right."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    assert is_red(image.getpixel((10, 20))) and is_blue(image.getpixel((50, 20)))


def assert_no_metadata(data: bytes) -> None:
    image = Image.open(io.BytesIO(data))
    assert not image.getexif() and not image.getexif().get_ifd(GPS_IFD)
    assert not {"exif", "xmp", "comment", "icc_profile"} & set(image.info)
    for marker in (b"Exif", b"PhoneMaker", SECRET.encode(), b"xmpmeta", b"ICC_PROFILE"):
        assert marker not in data


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload(client, conversation, data: bytes, name="photo.jpg"):
    # The browser's claimed type is irrelevant: it always says image/png here.
    image = SimpleUploadedFile(name, data, content_type="image/png")
    return client.post(f"/c/{conversation.uuid}/attachments/", {"image": image})


def stored(response) -> bytes:
    attachment = Attachment.objects.get(uuid=response.json()["id"])
    with attachment.file.open("rb") as handle:
        return handle.read()


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def stored_files(settings) -> list:
    return [path for path in settings.MEDIA_ROOT.rglob("*") if path.is_file()]


# --- phones' photos -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_a_phone_photo_is_stored_upright_without_exif_gps_or_comments(
    user, conversation, orientation
):
    client = signed_in(user)
    response = upload(client, conversation, phone_jpeg(orientation))
    assert response.status_code == 201
    assert response.json()["content_type"] == "image/jpeg"
    data = stored(response)
    assert Image.open(io.BytesIO(data)).format == "JPEG"
    assert_upright(data)
    assert_no_metadata(data)
    assert response.json()["size"] == len(data)
    # The page shows exactly these bytes.
    served = client.get(response.json()["url"])
    assert b"".join(served.streaming_content) == data


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("orientation", [3, 6, 8])
async def test_ollama_receives_the_photo_the_way_the_user_sees_it(
    fake, user, conversation, orientation
):
    @database_sync_to_async
    def attach():
        response = upload(signed_in(user), conversation, phone_jpeg(orientation))
        return response.json()["id"], stored(response)

    image_id, data = await attach()
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await ws.send_json_to(
        {"type": "send", "content": "What is it?", "model": "llava", "images": [image_id]}
    )
    await receive_until(ws, "done")
    [sent] = fake.last_chat()["messages"][-1]["images"]
    assert base64.b64decode(sent) == data
    assert_upright(base64.b64decode(sent))
    assert_no_metadata(base64.b64decode(sent))
    await ws.disconnect()


@pytest.mark.django_db
def test_data_hidden_after_the_jpeg_is_dropped(user, conversation):
    # Some phones append a video (motion photos) or other data after the picture.
    trailer = b"MOTION-VIDEO" + bytes(2000)
    data = stored(upload(signed_in(user), conversation, phone_jpeg(6, trailer=trailer)))
    assert b"MOTION-VIDEO" not in data
    assert_upright(data)


@pytest.mark.django_db
def test_an_mpo_keeps_only_its_first_picture(user, conversation):
    out = io.BytesIO()
    depth_map = Image.new("RGB", (WIDTH, HEIGHT), (128, 128, 128))
    halves((WIDTH, HEIGHT), "left").save(out, "MPO", save_all=True, append_images=[depth_map])
    assert Image.open(io.BytesIO(out.getvalue())).n_frames == 2
    response = upload(signed_in(user), conversation, out.getvalue())
    assert response.status_code == 201 and response.json()["content_type"] == "image/jpeg"
    image = Image.open(io.BytesIO(stored(response)))
    assert image.format == "JPEG" and getattr(image, "n_frames", 1) == 1
    assert_upright(stored(response))


@pytest.mark.django_db
def test_a_print_jpeg_in_cmyk_becomes_rgb(user, conversation):
    out = io.BytesIO()
    Image.new("CMYK", (WIDTH, HEIGHT), (0, 255, 255, 0)).save(out, "JPEG")
    image = Image.open(io.BytesIO(stored(upload(signed_in(user), conversation, out.getvalue()))))
    assert image.format == "JPEG" and image.mode == "RGB"
    assert is_red(image.getpixel((5, 5)))


# --- other formats --------------------------------------------------------------------


def png_chunks(data: bytes) -> list[str]:
    position, kinds = 8, []
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kinds.append(data[position + 4 : position + 8].decode("latin-1"))
        position += 12 + length
    return kinds


@pytest.mark.django_db
def test_a_png_loses_its_text_chunks_exif_and_profile_but_no_pixel(user, conversation):
    original = halves((WIDTH, HEIGHT), "left").convert("RGBA")
    original.putpixel((0, 0), (1, 2, 3, 4))  # transparency survives too
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", SECRET)
    info.add_text("Location", "48.85 2.35", zip=True)  # zTXt
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>gps</x:xmpmeta>")  # iTXt
    info.add(b"prVt", b"private data")
    out = io.BytesIO()
    original.save(out, "PNG", pnginfo=info, exif=exif_of(), icc_profile=srgb_profile())
    assert {"tEXt", "zTXt", "iTXt", "eXIf", "iCCP", "prVt"} <= set(png_chunks(out.getvalue()))

    response = upload(signed_in(user), conversation, out.getvalue(), name="shot.png")
    assert response.status_code == 201 and response.json()["content_type"] == "image/png"
    data = stored(response)
    assert png_chunks(data) == ["IHDR", "IDAT", "IEND"]
    assert_no_metadata(data)
    for marker in (b"48.85", b"private data"):
        assert marker not in data
    kept = Image.open(io.BytesIO(data))
    assert kept.mode == "RGBA" and kept.tobytes() == original.tobytes()


def animation(format: str, **extra) -> bytes:
    frames = [Image.new("RGB", (16, 12), color) for color in (RED, (20, 200, 20), BLUE)]
    out = io.BytesIO()
    frames[0].save(
        out, format, save_all=True, append_images=frames[1:], duration=[100, 200, 300], **extra
    )
    return out.getvalue()


def durations(data: bytes) -> list:
    image = Image.open(io.BytesIO(data))
    found = []
    for frame in ImageSequence.Iterator(image):
        frame.load()
        found.append(frame.info["duration"])
    return found


@pytest.mark.django_db
def test_an_animated_gif_stays_animated_without_its_comment(user, conversation):
    response = upload(signed_in(user), conversation, animation("GIF", loop=0, comment=SECRET))
    assert response.status_code == 201 and response.json()["content_type"] == "image/gif"
    data = stored(response)
    image = Image.open(io.BytesIO(data))
    assert image.format == "GIF" and image.n_frames == 3 and image.info["loop"] == 0
    assert durations(data) == [100, 200, 300]
    assert SECRET.encode() not in data and "comment" not in image.info


@pytest.mark.django_db
def test_an_animated_webp_is_turned_and_loses_its_exif(user, conversation):
    frames = [halves((HEIGHT, WIDTH), "bottom"), halves((HEIGHT, WIDTH), "bottom")]
    frames[1].putpixel((0, 0), (0, 255, 0))  # identical frames would be merged into one
    out = io.BytesIO()
    frames[0].save(
        out, "WEBP", save_all=True, append_images=frames[1:], duration=[150, 250],
        exif=exif_of(6), lossless=True,
    )  # fmt: skip
    response = upload(signed_in(user), conversation, out.getvalue(), name="a.webp")
    assert response.status_code == 201 and response.json()["content_type"] == "image/webp"
    data = stored(response)
    image = Image.open(io.BytesIO(data))
    assert image.n_frames == 2 and durations(data) == [150, 250]
    for frame in ImageSequence.Iterator(image):
        assert_upright(_frame_png(frame))
    assert_no_metadata(data)


def _frame_png(frame) -> bytes:
    out = io.BytesIO()
    frame.convert("RGB").save(out, "PNG")
    return out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(("lossless", "chunk"), [(True, b"VP8L"), (False, b"VP8 ")])
def test_a_webp_keeps_its_kind_of_compression(user, conversation, lossless, chunk):
    out = io.BytesIO()
    halves((WIDTH, HEIGHT), "left").save(out, "WEBP", lossless=lossless, exif=exif_of(1))
    data = stored(upload(signed_in(user), conversation, out.getvalue(), name="a.webp"))
    assert data[12:16] == chunk
    assert_upright(data)
    assert_no_metadata(data)


# --- refusals -------------------------------------------------------------------------


def png_header_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header announces width x height pixels (a decompression bomb:
    kilobytes on disk, gigabytes once decoded)."""
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    ihdr = b"IHDR" + header
    idat = b"IDAT" + zlib.compress(bytes(4096))
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(header)) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
        + struct.pack(">I", len(idat) - 4) + idat + struct.pack(">I", zlib.crc32(idat))
        + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    )  # fmt: skip


@pytest.mark.django_db
def test_a_decompression_bomb_is_refused_from_its_header(user, conversation, settings):
    response = upload(signed_in(user), conversation, png_header_claiming(100_000, 100_000))
    assert response.status_code == 413
    assert "too many pixels" in response.json()["error"]
    assert "50 megapixels" in response.json()["error"]
    assert Attachment.objects.count() == 0 and stored_files(settings) == []


@pytest.mark.django_db
def test_images_over_the_pixel_limit_are_refused(user, conversation, settings):
    settings.MAX_IMAGE_PIXELS = WIDTH * HEIGHT - 1  # below Pillow's own guard: ours refuses
    response = upload(signed_in(user), conversation, phone_jpeg(1))
    assert response.status_code == 413 and "too many pixels" in response.json()["error"]
    # An animation counts every frame: 3 frames of 16x12 pixels are 576.
    settings.MAX_IMAGE_PIXELS = 500
    response = upload(signed_in(user), conversation, animation("GIF"), name="a.gif")
    assert response.status_code == 413 and "too many pixels" in response.json()["error"]
    assert Attachment.objects.count() == 0 and stored_files(settings) == []


def bmp() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "BMP")
    return out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (phone_jpeg(1)[:700], "damaged or incomplete"),  # cut off while uploading
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 50, "damaged or incomplete"),
        (b"GIF89a" + b"\x00" * 3, "damaged or incomplete"),
        (bmp(), "Only PNG, JPEG, GIF and WebP"),  # an image, but not one we take
        (b"<svg onload=alert(1)>", "Only PNG, JPEG, GIF and WebP"),
    ],
    ids=["truncated-jpeg", "png-garbage", "gif-header-only", "bmp", "svg"],
)
def test_damaged_and_unsupported_files_are_refused_with_a_clear_message(
    user, conversation, settings, data, message
):
    response = upload(signed_in(user), conversation, data)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert Attachment.objects.count() == 0 and stored_files(settings) == []


def test_prepare_image_refuses_more_bytes_than_the_limit(settings):
    # The import path hands over bytes that never went through the upload's size check.
    settings.MAX_IMAGE_BYTES = 1024
    with pytest.raises(ImageRefused) as refused:
        prepare_image(phone_jpeg(6, trailer=bytes(2048)))
    assert refused.value.status == 413 and "too large" in refused.value.message


def test_prepare_image_describes_what_it_returns():
    image = prepare_image(phone_jpeg(6))
    assert (image.content_type, image.width, image.height, image.frames) == (
        "image/jpeg",
        WIDTH,
        HEIGHT,
        1,
    )
    assert_upright(image.data)


# --- images stored before this cleaning -----------------------------------------------


@pytest.mark.django_db
def test_the_migration_cleans_images_stored_before(user, conversation, settings):
    raw = phone_jpeg(6)
    old = Attachment(conversation=conversation, content_type="image/jpeg", size=len(raw))
    old.file.save("upload", ContentFile(raw), save=True)
    # An edited question shares its original's file.
    twin = Attachment.objects.create(
        conversation=conversation, file=old.file.name, content_type="image/jpeg", size=len(raw)
    )
    gone = Attachment(conversation=conversation, content_type="image/png", size=3)
    gone.file.save("upload", ContentFile(b"png"), save=True)
    gone.file.storage.delete(gone.file.name)

    migration = importlib.import_module("chat.migrations.0002_upright_images_without_metadata")
    from django.apps import apps

    migration.clean_stored_images(apps, None)
    for attachment in (old, twin):
        attachment.refresh_from_db()
        with attachment.file.open("rb") as handle:
            data = handle.read()
        assert_upright(data)
        assert_no_metadata(data)
        assert attachment.size == len(data)
    gone.refresh_from_db()
    assert gone.size == 3  # a missing file is left as it was
