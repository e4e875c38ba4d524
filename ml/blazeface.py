"""BlazeFace, MediaPipe's short-range face detector, run through LiteRT (`ai-edge-litert`).

The network is fully convolutional: trained on 128×128 inputs, it runs unchanged on any input
whose sides are multiples of 16 and finds faces of about 20 to 128 pixels *at its input*. So
one photo is searched twice: shrunk to 128 px on the long side for faces that fill much of the
frame, and shrunk to `FINE_SIDE` for the smaller faces of a group photo. A face that fills or
overflows the whole frame (a selfie at arm's length, a tight crop) is searched for once more in
the photo framed by a border. Then each face is looked at once more alone, at the size the
network was trained for: that look confirms it and gives keypoints precise enough to align
by; and a box inside a larger face (an eye or a mouth taken for a face) is dropped.

Outputs per anchor (896 at 128×128: two per cell of the 16×16 grid, six per cell of the 8×8
one): a score logit and 16 numbers, the box centre and size and six keypoints (the eye on the
image's left, the other eye, nose tip, mouth centre, the two ear tragions), in input pixels
relative to the anchor's centre. Decoding follows MediaPipe's `face_detection_short_range`
graph; the weights are MediaPipe's (Apache 2.0, `ml/shipped/LICENSE-mediapipe`).
"""

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

MODEL = Path(__file__).parent / "shipped" / "face_detection_short_range.tflite"
COARSE_SIDE = 128  # the network's own input size: faces of ≥ 16 % of the long side
# Faces from about 20–30 px here: ≥ 5–7 % of the long side (60–90 px in a 1280×960 photo). The
# network's time grows with the pixels: 448 is what fits detection in 15 ms on one core.
FINE_SIDE = 448
# Interpreters kept per detector (input sizes): the coarse one and a few photo shapes.
MAX_NETWORKS = 4
# Scores: MediaPipe keeps ≥ 0.5 at 128 px. The fine pass sees far more background per face, so
# it asks for more: on synthetic group photos made with FER2013 *training* faces (the test
# faces are kept for benchmarks/faces.py), false boxes fell from 26 to 3 between 0.5 and 0.6
# while recall fell from 0.42 to 0.39; at 0.7, 2 false boxes but recall 0.35.
COARSE_MIN_SCORE = 0.5
FINE_MIN_SCORE = 0.6
NMS_IOU = 0.3
# Each face is looked at once more, alone, its box framed this many times across in the
# network's 128×128 input (realphotos-dev with the model shipped before: balanced accuracy
# 0.656 without this step, 0.663 at 1.5, 0.669 at 2.0, 0.666 at 2.5).
REFINE_FRAME = 2.0
# A face is kept only when that second look finds it again, overlapping this much: it drops a
# chin taken for a face below a tilted head (tests/ml/test_faces.py) and costs one of
# realphotos-dev's 851 faces.
CONFIRM_IOU = 0.5
# A box lying this much inside a larger one is an eye or a mouth of that face, taken for a small
# face by the fine pass (94 of realphotos-dev's 851 portraits had one or two before this rule).
NESTED_SHARE = 0.5
BORDER = 0.5  # the retry's border on each side, as a share of the long side
# The retry is for faces too large for the frame: a smaller face found only then is something
# else (a coffee cup, in tests/data/faces/coffee.jpg). Faces it found in realphotos-dev were
# 0.72–0.98 of the photo's short side.
FRAMED_MIN_SHARE = 0.6
# Grid strides and anchors per cell of the two output layers.
LAYERS = ((8, 2), (16, 6))


@dataclass(frozen=True)
class Detection:
    """A face in photo pixels: box (x, y, w, h), score, keypoints (6, 2) as (x, y).

    `look`: the score of the second look at the face alone, framed at the network's own
    input size (0 before it). It tells an upright face from a turned one far better than the
    pass's score (ml/upright.py)."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray
    look: float = 0.0


def _anchors(height: int, width: int) -> np.ndarray:
    """Anchor centres (N, 2) in input pixels, in the network's output order."""
    centres = []
    for stride, per_cell in LAYERS:
        ys, xs = np.mgrid[0 : height // stride, 0 : width // stride]
        grid = np.stack([(xs + 0.5) * stride, (ys + 0.5) * stride], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


class _Network:
    """One interpreter for one input size (sides multiples of 16). Not thread-safe."""

    def __init__(self, height: int, width: int):
        self.interpreter = Interpreter(model_path=str(MODEL), num_threads=1)
        self.input = self.interpreter.get_input_details()[0]["index"]
        if (height, width) != (COARSE_SIDE, COARSE_SIDE):
            self.interpreter.resize_tensor_input(self.input, [1, height, width, 3])
        self.interpreter.allocate_tensors()
        outputs = self.interpreter.get_output_details()
        self.regressors = next(o["index"] for o in outputs if o["shape"][-1] == 16)
        self.scores = next(o["index"] for o in outputs if o["shape"][-1] == 1)
        self.anchors = _anchors(height, width)

    def __call__(self, rgb: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        """Scores (K,) and regressions (K, 8, 2) in input pixels of the anchors above
        `min_score`; `rgb` is uint8 of exactly the input size."""
        x = rgb.astype(np.float32) * (2 / 255) - 1  # the [-1, 1] range MediaPipe feeds it
        self.interpreter.set_tensor(self.input, x[None])
        self.interpreter.invoke()
        logits = self.interpreter.get_tensor(self.scores).reshape(-1)
        keep = logits > np.log(min_score / (1 - min_score))  # sigmoid(logit) > min_score
        scores = 1 / (1 + np.exp(-logits[keep]))
        points = self.interpreter.get_tensor(self.regressors).reshape(-1, 8, 2)[keep].copy()
        anchors = self.anchors[keep]
        points[:, 0] += anchors  # box centre
        points[:, 2:] += anchors[:, None]  # keypoints; points[:, 1] is the box size
        return scores, points


class BlazeFace:
    """Faces in a photo, largest range of sizes for the time. One instance per thread."""

    def __init__(self) -> None:
        self._networks: OrderedDict[tuple[int, int], _Network] = OrderedDict()

    def _network(self, height: int, width: int) -> _Network:
        """The interpreter for this input size. The fine pass's size follows each photo's
        shape, and an interpreter holds about 26 MB at 448 × 336: only the most recently used
        few are kept, or a worker would grow with every new aspect ratio it is sent."""
        key = (height, width)
        if key in self._networks:
            self._networks.move_to_end(key)
        else:
            self._networks[key] = _Network(height, width)
            while len(self._networks) > MAX_NETWORKS:
                self._networks.popitem(last=False)
        return self._networks[key]

    def detect(self, bgr: np.ndarray, *, fine: bool = True) -> list[Detection]:
        """Every face in a BGR photo, in photo pixels. `fine=False` leaves out the pass for
        small faces (two thirds of the time): a clip's frames between full searches."""
        # The fine pass's picture first; the coarse one is shrunk from it, which is cheaper.
        fine_image, fine_scale = _shrink(bgr, FINE_SIDE)
        found = self._search(fine_image, COARSE_SIDE, COARSE_MIN_SCORE, square=True)
        if fine and max(fine_image.shape[:2]) > 2 * COARSE_SIDE:
            found += self._search(fine_image, FINE_SIDE, FINE_MIN_SCORE, square=False)
        detections = _suppress(*found) if found else []
        if not detections:
            detections = self._framed(fine_image)
        refined = [r for r in (self._refine(fine_image, d) for d in detections) if r is not None]
        return [_scale(d, 1 / fine_scale) for d in _drop_nested(refined)]

    def follow(self, bgr: np.ndarray, box: tuple[float, float, float, float]) -> Detection | None:
        """The face found at `box` in the previous frame of a clip, looked for again around
        it in this one by the second look alone (a tenth of a full search); None when it is
        not there any more."""
        return self._refine(bgr, Detection(box, 1.0, np.zeros((6, 2), np.float32)))

    def _refine(self, bgr: np.ndarray, d: Detection) -> Detection | None:
        """The face looked at again alone, its box `REFINE_FRAME` times across the network's
        own input: keypoints of a face found small in the fine pass, or averaged over both
        passes, are coarse enough to tilt the aligned crop by 20° (the right-hand face of
        tests/data/faces/group_three.jpg). None when that look does not find it again."""
        x, y, w, h = d.box
        scale = COARSE_SIDE / (REFINE_FRAME * max(w, h))
        shift = COARSE_SIDE / 2 - scale * np.array([x + w / 2, y + h / 2])
        matrix = np.array([[scale, 0, shift[0]], [0, scale, shift[1]]])
        size = (COARSE_SIDE, COARSE_SIDE)
        patch = cv2.warpAffine(
            bgr, matrix, size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
        )
        found = self._network(COARSE_SIDE, COARSE_SIDE)(patch[:, :, ::-1], COARSE_MIN_SCORE)
        if not len(found[0]):
            return None
        seen = _suppress(found)
        own = _corners(d.box) * scale + np.tile(shift, 2)
        overlaps = _iou(own, np.array([_corners(c.box) for c in seen]))
        if overlaps.max() < CONFIRM_IOU:
            return None
        best = seen[int(overlaps.argmax())]
        bx, by, bw, bh = best.box
        box = ((bx - shift[0]) / scale, (by - shift[1]) / scale, bw / scale, bh / scale)
        return Detection(box, d.score, (best.keypoints - shift) / scale, best.score)

    def _framed(self, bgr: np.ndarray) -> list[Detection]:
        """The coarse pass over the photo inside a border: a face too large for the frame."""
        pad = round(max(bgr.shape[:2]) * BORDER)
        framed = cv2.copyMakeBorder(bgr, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        found = self._search(framed, COARSE_SIDE, COARSE_MIN_SCORE, square=True)
        large = FRAMED_MIN_SHARE * min(bgr.shape[:2])
        return [_shift(d, -pad) for d in _suppress(*found) if d.box[2] >= large] if found else []

    def _search(
        self, bgr: np.ndarray, side: int, min_score: float, *, square: bool
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """One pass with the photo's long side shrunk to `side` (never enlarged), letterboxed to
        a square (the trained input) or padded to the next multiple of 16."""
        small, scale = _shrink(bgr, side)
        if square:
            in_h = in_w = side
        else:
            in_h, in_w = (-(-n // 16) * 16 for n in small.shape[:2])
        top, left = (in_h - small.shape[0]) // 2, (in_w - small.shape[1]) // 2
        canvas = np.zeros((in_h, in_w, 3), np.uint8)
        canvas[top : top + small.shape[0], left : left + small.shape[1]] = small[:, :, ::-1]
        scores, points = self._network(in_h, in_w)(canvas, min_score)
        if not len(scores):
            return []
        points[:, 0] -= (left, top)
        points[:, 2:] -= (left, top)
        return [(scores, points / scale)]


def _shrink(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """The image with its long side at most `side`, and the scale applied."""
    height, width = image.shape[:2]
    scale = min(1.0, side / max(height, width))
    if scale == 1.0:
        return image, scale
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def _suppress(*found: tuple[np.ndarray, np.ndarray]) -> list[Detection]:
    """Non-maximum suppression over all passes; each kept face is the score-weighted mean of
    the boxes it suppressed (MediaPipe's weighted NMS), which steadies boxes and keypoints."""
    scores = np.concatenate([s for s, _ in found])
    points = np.concatenate([p for _, p in found])
    boxes = np.concatenate([points[:, 0] - points[:, 1] / 2, points[:, 1]], axis=1)
    order = np.argsort(-scores)
    corners = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    detections = []
    taken = np.zeros(len(scores), bool)
    for i in order:
        if taken[i]:
            continue
        group = ~taken & (_iou(corners[i], corners) > NMS_IOU)
        taken |= group
        weights = scores[group] / scores[group].sum()
        mean = np.tensordot(weights, points[group], axes=1)
        box = (*(mean[0] - mean[1] / 2), *mean[1])
        detections.append(Detection(tuple(float(v) for v in box), float(scores[i]), mean[2:]))
    return detections


def _drop_nested(detections: list[Detection]) -> list[Detection]:
    """Without the boxes that lie mostly inside a larger one: the fine pass takes an eye or a
    mouth of a large face for a small face (11 % of realphotos-dev's portraits had one)."""
    kept = []
    for d in detections:
        box = _corners(d.box)
        larger = [_corners(o.box) for o in detections if o.box[2] > d.box[2]]
        inside = max((_inside(box, o) for o in larger), default=0.0)
        if inside < NESTED_SHARE:
            kept.append(d)
    return kept


def _corners(box: tuple[float, ...]) -> np.ndarray:
    """(x, y, w, h) as (x0, y0, x1, y1)."""
    x, y, w, h = box
    return np.array([x, y, x + w, y + h])


def _inside(box: np.ndarray, other: np.ndarray) -> float:
    """The share of `box` that lies inside `other`, both (x0, y0, x1, y1)."""
    w = max(0.0, min(box[2], other[2]) - max(box[0], other[0]))
    h = max(0.0, min(box[3], other[3]) - max(box[1], other[1]))
    return w * h / max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x0, y0, x1, y1) box with each of `boxes`."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def _shift(d: Detection, offset: float) -> Detection:
    x, y, w, h = d.box
    return Detection((x + offset, y + offset, w, h), d.score, d.keypoints + offset, d.look)


def _scale(d: Detection, factor: float) -> Detection:
    box = tuple(v * factor for v in d.box)
    return Detection(box, d.score, d.keypoints * factor, d.look)  # type: ignore[arg-type]
