"""Whether a photo shows its faces upright, and turning it upright.

BlazeFace also finds faces turned by 90° or 180°, and places their keypoints as if they were
upright, so neither a face being found nor its keypoints tell the turn. What does is the second
look at the face alone (`Detection.look`): the photo is looked at in its quarter turns and the
turn whose best face looks most sure wins. Measured on 192 realphotos-dev photos and their
copies turned by 90°, 180° and 270° (`benchmarks/orientation.py` has the whole set): that rule
turned no upright photo and found 99.5 % of the turned copies' turns, where the pass's own score
turned 8 % of the upright portraits and found 92 %.

The other turns are looked at only when no face at 0° looks sure (`SURE_UPRIGHT`): about half
of the upright portraits have such a face, and none of the turned copies. Predictions answer a
turned photo's faces as upright; a contribution must be upright and is refused otherwise.
"""

import cv2
import numpy as np

from ml.blazeface import Detection
from ml.faces import Face, detect, find_faces, looks_like_crop

TURNS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
# A face whose second look is at least this sure is taken as upright without trying turns.
SURE_UPRIGHT = 0.85
# Most photos arrive upright (phones turn them by their EXIF orientation, which decoding
# honours): another turn wins only when its best face looks this much surer. Chosen on
# realphotos-dev as the smallest margin that turns none of its 851 upright photos (0: 4 turned,
# by 0.003–0.071); turned copies found: see benchmarks/README.md.
TURN_MARGIN = 0.08


def turned(image: np.ndarray, degrees: int) -> np.ndarray:
    """The image turned clockwise by 0, 90, 180 or 270 degrees."""
    return image if degrees == 0 else cv2.rotate(image, TURNS[degrees])


def _best_look(detections: list[Detection]) -> float:
    return max((d.look for d in detections), default=0.0)


def _best_of_turns(image: np.ndarray, at_zero: list[Detection]) -> tuple[int, list[Detection]]:
    looks = {0: at_zero} | {degrees: detect(turned(image, degrees)) for degrees in TURNS}
    best = max(looks, key=lambda degrees: _best_look(looks[degrees]))
    if _best_look(looks[best]) <= _best_look(at_zero) + TURN_MARGIN:
        best = 0
    return best, looks[best]


def upright_faces(image: np.ndarray) -> tuple[list[Face], np.ndarray, int]:
    """The faces of a photo someone may have sent turned: the faces (as `find_faces` gives
    them), the image they were cut from (turned upright) and the turn in degrees clockwise
    that made it upright (0 when no face is found in any turn)."""
    if looks_like_crop(image):
        return find_faces(image), image, 0
    at_zero = detect(image)
    degrees, detections = (
        (0, at_zero) if _best_look(at_zero) >= SURE_UPRIGHT else _best_of_turns(image, at_zero)
    )
    upright = turned(image, degrees)
    return find_faces(upright, detections), upright, degrees
