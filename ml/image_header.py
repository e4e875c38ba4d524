"""What an image's header tells before anything is decoded: its size, and whether an image of
that shape may hold a face. Pillow only: the bot checks every photo with these, and OpenCV and
the detector (ml/faces.py, about 55 MB) are for the photos it looks into."""

import io
import warnings

from PIL import Image, UnidentifiedImageError

FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
# Photos smaller than this on either side, or longer than this ratio, hold no usable face.
MIN_SIDE = 24
MAX_ASPECT = 8.0


class ImageError(ValueError):
    """Not an image, broken or truncated, or too many pixels; the message is for logs."""


class TooManyPixels(ImageError):
    """The header announces more pixels than allowed (the size is for telling the user)."""

    def __init__(self, width: int, height: int, max_pixels: int):
        super().__init__(f"{width}×{height} pixels is more than {max_pixels:,}")
        self.width = width
        self.height = height


class UnusableShape(ImageError):
    """A readable image too small or too elongated to hold a face (a 1×1 pixel, 30000×10)."""

    def __init__(self, width: int, height: int):
        super().__init__(f"{width}×{height} pixels cannot hold a face")
        self.width = width
        self.height = height


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height read from the header alone; (0, 0) when no image header is readable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # nothing is decoded
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                return image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        return 0, 0


def check_shape(width: int, height: int, max_pixels: int) -> None:
    """Refuse, before anything is decoded, an image that is too large or cannot hold a face."""
    if width * height > max_pixels:
        raise TooManyPixels(width, height, max_pixels)
    if min(width, height) < MIN_SIDE or max(width, height) > MAX_ASPECT * min(width, height):
        raise UnusableShape(width, height)
