"""Decoding untrusted photos and finding the faces in them, cropped the way FER2013 looks.

Detector: OpenCV's Haar cascade `haarcascade_frontalface_alt2`. No DNN detector weights can be
fetched here (YuNet is not on the package index). Measured on 150 FER2013 faces pasted at
50–160 px into 640×480 versions of three real photos (coffee, cat, cameraman; the cameraman's own
face counts as a false box, so these overstate them): `frontalface_default` found 77 % with 40
false boxes at 4 neighbours and scale step 1.1, `alt2` 78 % with 18; at 5 neighbours 75 % with
19 against 75 % with 7; a finer scale step (1.05) finds 4–6 points more at twice the time.
`alt2` is better at every setting. 4 neighbours, step 1.1: a bot that calls a coffee cup
"negative" is worse than one that misses a small face in a crowd, and 1.1 keeps detection at
about 0.1–0.2 s per photo on 2 cores. Photos are downscaled to at most 800 px on the long side
for detection (a face must then still be ≥ 24 px, 3 % of the long side) and boxes mapped back.

Crop: on FER2013 faces pasted into photos the cascade's box is 1.04–1.07 times smaller than the
FER2013 image and centred on it, so a square of 1.1 × the box around its centre, greyed and
resized to 48×48, looks like the training data.
"""

import io
import threading
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ml.preprocess import FACE_SIZE

FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
CASCADE = "haarcascade_frontalface_alt2.xml"
SCALE_FACTOR = 1.1
MIN_NEIGHBOURS = 4
MIN_FACE = 24  # pixels, at detection scale
DETECT_MAX_SIDE = 800
MARGIN = 1.1  # crop side / detector box side
# Images this small are face crops already: the cascade needs more pixels than a face then has.
CROP_MAX_SIDE = 96
# Nearly square images up to this size with no face found are taken as loose face crops.
LOOSE_CROP_MAX_SIDE = 256
LOOSE_CROP_ASPECT = 1.25


class ImageError(ValueError):
    """Not an image, broken or truncated, or too many pixels; the message is for logs."""


class TooManyPixels(ImageError):
    """The header announces more pixels than allowed (the size is for telling the user)."""

    def __init__(self, width: int, height: int, max_pixels: int):
        super().__init__(f"{width}×{height} pixels is more than {max_pixels:,}")
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


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in the decoded image
    crop: np.ndarray  # (48, 48) uint8 grey, as the training data looks


def decode_image(data: bytes, max_pixels: int = 40_000_000) -> np.ndarray:
    """Bytes of a photo → BGR uint8 (H, W, 3), turned upright by its EXIF orientation.

    The pixel count is checked from the header before anything is decoded, so a small file
    that would expand into gigabytes (a decompression bomb) costs nothing.
    """
    try:
        with warnings.catch_warnings():
            # Our own limit below is the one that applies; Pillow's warning would be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise TooManyPixels(width, height, max_pixels)
            if width < 1 or height < 1:
                raise ImageError(f"empty image {width}×{height}")
            image.load()
            image = ImageOps.exif_transpose(image)
            rgb = _to_rgb(image)
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError(f"not an image in a supported format ({', '.join(FORMATS)})") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"too many pixels: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncated and corrupt data with any of these.
        raise ImageError(f"broken image: {exc}") from exc
    return np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode → RGB; transparent parts become white, as a chat client shows them."""
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: scale to 8 bits rather than clipping everything to white.
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() or 1.0
        image = Image.fromarray((array * (255.0 / peak)).astype(np.uint8))
    return image.convert("RGB")


def grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


_per_thread = threading.local()


def _cascade() -> cv2.CascadeClassifier:
    """This thread's detector. One must not be shared between threads: detectMultiScale keeps
    the image it scans inside the classifier object, so two threads scanning at once get each
    other's faces (or an OpenCV assertion); loading one takes about 10 ms."""
    cascade = getattr(_per_thread, "cascade", None)
    if cascade is None:
        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
        if cascade.empty():
            raise RuntimeError(f"OpenCV's {CASCADE} could not be loaded")
        _per_thread.cascade = cascade
    return cascade


def detect_boxes(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h) in image coordinates, left to right."""
    g = grey(image)
    height, width = g.shape
    scale = min(1.0, DETECT_MAX_SIDE / max(height, width))
    small = (
        g
        if scale == 1.0
        else cv2.resize(
            g, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
        )
    )
    # Equalising makes dim and washed-out photos look like the images the cascade learnt from.
    found = _cascade().detectMultiScale(
        cv2.equalizeHist(small),
        scaleFactor=SCALE_FACTOR,
        minNeighbors=MIN_NEIGHBOURS,
        minSize=(MIN_FACE, MIN_FACE),
    )
    boxes = [
        tuple(round(v / scale) for v in box) for box in np.asarray(found).reshape(-1, 4).tolist()
    ]
    return sorted(_drop_nested(boxes), key=lambda b: (b[0], b[1]))  # type: ignore[arg-type]


def _drop_nested(boxes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """The cascade sometimes reports a face and a box inside it; keep the larger one."""
    kept: list[tuple[int, ...]] = []
    for box in sorted(boxes, key=lambda b: b[2] * b[3], reverse=True):
        if all(_overlap(box, other) < 0.5 for other in kept):
            kept.append(box)
    return kept


def _overlap(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Intersection over the smaller box's area."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / min(a[2] * a[3], b[2] * b[3])


def crop_box(image: np.ndarray, box: tuple[int, int, int, int] | list[int]) -> np.ndarray:
    """The 48×48 grey crop for a detector box: a square of MARGIN × the box around its centre,
    padded by repeating the edge where it leaves the image. Training on contributed photos
    crops their stored face box with this same function."""
    g = grey(image)
    x, y, w, h = (int(v) for v in box)
    side = max(1, round(max(w, h) * MARGIN))
    left = round(x + w / 2 - side / 2)
    top = round(y + h / 2 - side / 2)
    pad = max(0, -left, -top, left + side - g.shape[1], top + side - g.shape[0])
    if pad:
        g = cv2.copyMakeBorder(g, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    square = g[top + pad : top + pad + side, left + pad : left + pad + side]
    return _resize_face(square)


def _resize_face(square: np.ndarray) -> np.ndarray:
    if square.shape == (FACE_SIZE, FACE_SIZE):
        return np.ascontiguousarray(square)
    shrinking = square.shape[0] > FACE_SIZE
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(square, (FACE_SIZE, FACE_SIZE), interpolation=interpolation)


def whole_face(image: np.ndarray) -> Face:
    """The image taken as one face: its centre square, grey, 48×48."""
    g = grey(image)
    height, width = g.shape
    side = min(height, width)
    left, top = (width - side) // 2, (height - side) // 2
    return Face((left, top, side, side), _resize_face(g[top : top + side, left : left + side]))


def looks_like_crop(image: np.ndarray) -> bool:
    height, width = image.shape[:2]
    return max(height, width) <= CROP_MAX_SIDE


def looks_like_loose_crop(image: np.ndarray) -> bool:
    height, width = image.shape[:2]
    aspect = max(height, width) / min(height, width)
    return max(height, width) <= LOOSE_CROP_MAX_SIDE and aspect <= LOOSE_CROP_ASPECT


def find_faces(image: np.ndarray) -> list[Face]:
    """Every face in the photo, left to right. A small image, or a small nearly square one in
    which the cascade finds nothing, is a face crop already and is returned whole."""
    if looks_like_crop(image):
        return [whole_face(image)]
    boxes = detect_boxes(image)
    if not boxes and looks_like_loose_crop(image):
        return [whole_face(image)]
    return [Face(box, crop_box(image, box)) for box in boxes]
