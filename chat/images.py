"""Images from users, checked and made safe to keep and to send: decoded by Pillow (so the
type comes from the content, never the name), turned upright by their EXIF orientation,
and re-encoded without any metadata (EXIF with GPS, XMP, comments, text chunks, ICC
profiles, trailing data such as a phone's embedded video).

Why re-encode: a browser shows a photo upright by its EXIF Orientation, but Ollama
decodes the raw pixels (ollama-api.md §2: `images` are plain base64 of the file), so a
phone photo tagged "rotate 90°" reaches the model on its side. After `prepare_image` the
pixels are stored the way the user sees them and there is nothing left to interpret.

What each format becomes (the format never changes):
- JPEG stays JPEG, encoded with the original's quantization tables and chroma subsampling
  when it has them (about the same size and sharpness as the phone wrote), else at
  quality 90. MPO (a JPEG with extra pictures: previews, depth maps) keeps its first
  picture only.
- PNG stays PNG (lossless; transparency kept).
- GIF and WebP stay GIF and WebP; animations stay animated with their frame durations and
  loop count. WebP stays lossless when it was, else quality 90.
- An embedded colour profile (e.g. Display P3 from a phone) is applied to the pixels,
  which become sRGB: the browser honours the profile but Ollama ignores it, so without
  this the model would see other colours than the user. CMYK (print) JPEGs become RGB.

Used by every path that stores an image: uploads (chat.services.attachments) and imports.
"""

import io
import struct
from dataclasses import dataclass

from django.conf import settings
from PIL import Image, ImageCms, ImageOps, ImageSequence, JpegImagePlugin, UnidentifiedImageError

# Pillow's own guard, set deliberately to our limit: `Image.open` refuses (raises
# DecompressionBombError) anything over twice this before decoding a pixel. Images between
# the limit and twice it are refused by `prepare_image` itself, with the same message.
Image.MAX_IMAGE_PIXELS = settings.MAX_IMAGE_PIXELS

CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}
# Only these decoders are tried (MPO comes through the JPEG one): a smaller attack surface
# than every format Pillow knows.
_DECODERS = ("JPEG", "PNG", "GIF", "WEBP")
# An animation is decoded frame by frame into memory; beyond this it is refused.
MAX_FRAMES = 1000
JPEG_QUALITY = 90  # when the original's quantization tables are unknown
WEBP_QUALITY = 90

REFUSED_TYPE = "Only PNG, JPEG, GIF and WebP images can be attached."
REFUSED_DAMAGED = "This image can't be read: the file is damaged or incomplete."


class ImageRefused(Exception):
    """An image that can't be kept. `message` is for people; `status` is the HTTP status
    that fits (400 unreadable or unsupported, 413 too large)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to store and to send to Ollama: upright, without metadata."""

    data: bytes
    content_type: str  # image/png | image/jpeg | image/gif | image/webp
    width: int  # pixels, after orientation
    height: int
    frames: int  # 1 unless animated


def prepare_image(data: bytes) -> PreparedImage:
    """Check an image by its content and return it upright, re-encoded in its own format
    without metadata (see the module docstring for what each format becomes).

    Limits: `settings.MAX_IMAGE_BYTES` on `data`, `settings.MAX_IMAGE_PIXELS` on the
    pixels (all frames together for an animation), `MAX_FRAMES` frames.

    Raises ImageRefused (with a message for people) for: too many bytes (413), a format
    other than PNG, JPEG, GIF, WebP (400), too many pixels or frames (413: a decompression
    bomb is refused from its header, before decoding), damaged or truncated data (400).

    Stable entry point: uploads and conversation imports both call it."""
    if len(data) > settings.MAX_IMAGE_BYTES:
        raise ImageRefused(
            f"The image is too large ({len(data) / 1e6:.1f} MB; the limit is "
            f"{settings.MAX_IMAGE_BYTES / 1e6:.1f} MB).",
            status=413,
        )
    try:
        with Image.open(io.BytesIO(data), formats=_DECODERS) as image:
            source_format = image.format
            # MPO: the first picture is the photo; the others are previews or depth maps.
            count = 1 if source_format == "MPO" else getattr(image, "n_frames", 1)
            _check_size(image.width, image.height, count)
            frames = [_clean_frame(frame) for frame in _frames(image, count)]
            encoded = _encode(image, source_format, frames, data)
    except Image.DecompressionBombError:
        raise ImageRefused(_too_many_pixels(), status=413) from None
    except UnidentifiedImageError:
        # No decoder took it: say "damaged" when it starts like one of ours.
        raise ImageRefused(REFUSED_DAMAGED if _signed(data) else REFUSED_TYPE) from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        # What Pillow's decoders raise for broken data ("image file is truncated", bad
        # Huffman tables, broken chunks...).
        raise ImageRefused(REFUSED_DAMAGED) from exc
    first = frames[0]
    return PreparedImage(
        data=encoded,
        content_type=CONTENT_TYPES[source_format],
        width=first.width,
        height=first.height,
        frames=len(frames),
    )


# --- checks ---------------------------------------------------------------------------


def _too_many_pixels() -> str:
    return (
        "The image has too many pixels (the limit is "
        f"{settings.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels). Send a smaller version."
    )


def _check_size(width: int, height: int, count: int) -> None:
    if count > MAX_FRAMES:
        raise ImageRefused(
            f"The animation has too many frames ({count}; the limit is {MAX_FRAMES}).", 413
        )
    if width * height * count > settings.MAX_IMAGE_PIXELS:
        raise ImageRefused(_too_many_pixels(), status=413)


# The first bytes of each format we take (only to word a refusal; Pillow decides).
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")


def _signed(data: bytes) -> bool:
    return data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


# --- pixels ---------------------------------------------------------------------------


def _frames(image: Image.Image, count: int):
    """Each frame decoded, as an image of its own (duration kept in its info)."""
    if count == 1:
        image.load()
        yield image.copy()
        return
    for frame in ImageSequence.Iterator(image):
        frame.load()
        yield frame.copy()


def _clean_frame(frame: Image.Image) -> Image.Image:
    """The frame upright, in sRGB, with only the info that affects how it looks."""
    # The orientation tag sits in the EXIF of the file; copies keep it in their info.
    upright = ImageOps.exif_transpose(frame)
    icc = upright.info.get("icc_profile")
    if icc and upright.mode in ("RGB", "RGBA", "CMYK"):
        upright = _to_srgb(upright, icc)
    if upright.mode == "CMYK":
        upright = upright.convert("RGB")  # printers' colours, no profile: the usual mapping
    kept = {key: upright.info[key] for key in ("transparency", "duration") if key in upright.info}
    upright.info = kept
    return upright


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGB" if image.mode == "CMYK" else image.mode
        return ImageCms.profileToProfile(
            image, source, ImageCms.createProfile("sRGB"), outputMode=mode
        )
    except ImageCms.PyCMSError:
        return image  # a broken profile: the pixels as they are, the profile dropped


# --- encoding -------------------------------------------------------------------------


def _encode(source: Image.Image, source_format: str, frames: list, data: bytes) -> bytes:
    out = io.BytesIO()
    first, rest = frames[0], frames[1:]
    if source_format in ("JPEG", "MPO"):
        options = {"quality": JPEG_QUALITY}
        tables = getattr(source, "quantization", None)
        if tables:
            options = {"qtables": tables}
            sampling = JpegImagePlugin.get_sampling(source)
            if sampling != -1:
                options["subsampling"] = sampling
        first.save(out, "JPEG", **options)
    elif source_format == "PNG":
        first.save(out, "PNG")
    else:
        options = _animation_options(source, frames) if rest else {}
        if source_format == "WEBP":
            if _webp_is_lossless(data):
                options["lossless"] = True  # quality then means effort: Pillow's default
            else:
                options["quality"] = WEBP_QUALITY
        first.save(out, source_format, **options)
    return out.getvalue()


def _animation_options(source: Image.Image, frames: list) -> dict:
    options = {
        "save_all": True,
        "append_images": frames[1:],
        "duration": [frame.info.get("duration", 100) for frame in frames],
    }
    # GIF without a loop count plays once; WebP's 0 means forever: keep what the file said.
    if "loop" in source.info:
        options["loop"] = source.info["loop"]
    return options


def _webp_is_lossless(data: bytes) -> bool:
    """Whether a WebP's (first) picture is lossless: its first image chunk is `VP8L`
    rather than `VP8 ` (RIFF layout: developers.google.com/speed/webp/docs/riff_container;
    an animation's frames are `ANMF` chunks holding a 16-byte header, then image chunks)."""
    position = 12  # after "RIFF", the size and "WEBP"
    while position + 8 <= len(data):
        kind = data[position : position + 4]
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        if kind == b"VP8L":
            return True
        if kind == b"VP8 ":
            return False
        if kind == b"ANMF":
            position += 8 + 16  # into the frame
            continue
        position += 8 + size + (size & 1)  # chunks are padded to an even size
    return False
