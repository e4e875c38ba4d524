"""Near-duplicate detection (ml/near_dupes.py) measured on FER2013.

False matches: every distinct image of the archive (byte-identical copies collapsed) is hashed
and compared with every other; a face with a match is either a real near-copy in FER2013 or a
false match (the first pairs are written to the JSON; the first 16, looked at by eye, were
all real: the same photo cut, toned or compressed differently, or the next frame of a series).
False matches are measured against faces that cannot be copies: every face of realphotos-dev
(another source) is compared with all of FER2013. Copies caught: N random
distinct FER2013 faces, and every realphotos-dev photo, are edited, sent through the same crop
the platform cuts from a contributed photo (`ml.faces.find_faces`: detection and alignment for
a photo), and compared with their original.

    .venv/bin/python -m benchmarks.near_dupes [--fer2013 ZIP] [--realphotos ZIP] [--images 2000]
        [--json PATH]
"""

import argparse
import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from emobot.face_hash import BLOCK_MAX, PHASH_MAX
from ml.faces import decode_image, find_faces
from ml.fer2013 import decode_grey, group_by_content, is_blank, iter_archive
from ml.near_dupes import face_hash, groups, near_pairs

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _jpeg(face: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)


def _crop(face: np.ndarray, share: float) -> np.ndarray:
    cut = round(face.shape[0] * share / 2)
    return face[cut:-cut, cut:-cut]


EDITS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "jpeg quality 30": lambda f: _jpeg(f, 30),
    "jpeg quality 75": lambda f: _jpeg(f, 75),
    "half size": lambda f: cv2.resize(f, (24, 24), interpolation=cv2.INTER_AREA),
    "double size": lambda f: cv2.resize(f, (96, 96), interpolation=cv2.INTER_CUBIC),
    "brighter +30": lambda f: cv2.add(f, np.full_like(f, 30)),
    "contrast ×1.2": lambda f: cv2.convertScaleAbs(f, alpha=1.2, beta=-24),
    "gaussian blur 3": lambda f: cv2.GaussianBlur(f, (3, 3), 0),
    "crop 10%": lambda f: _crop(f, 0.10),
    "mirrored": lambda f: cv2.flip(f, 1),
}


def crop_of(image: np.ndarray) -> np.ndarray:
    """The 48×48 crop the platform cuts from this image (a small image is taken whole)."""
    bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return find_faces(bgr)[0].crop


def largest_face(image: np.ndarray) -> np.ndarray | None:
    faces = find_faces(image)
    return max(faces, key=lambda f: f.box[2] * f.box[3]).crop if faces else None


# Edits of whole photos: their copy goes through detection and alignment again.
PHOTO_EDITS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "jpeg quality 30": lambda p: cv2.imdecode(
        cv2.imencode(".jpg", p, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_COLOR
    ),
    "half size": lambda p: cv2.resize(p, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
    "brighter +30": lambda p: cv2.add(p, np.full_like(p, 30)),
}


def real_faces(archive: Path) -> tuple[list[np.ndarray], dict[str, float]]:
    """The largest face of each photo of realphotos-dev (photos without one are skipped), and
    the share of each photo edit whose copy is caught."""
    crops = []
    hits = dict.fromkeys(PHOTO_EDITS, 0)
    with zipfile.ZipFile(archive) as z:
        for name in sorted(n for n in z.namelist() if n.lower().endswith(".jpg")):
            photo = decode_image(z.read(name))
            crop = largest_face(photo)
            if crop is None:
                continue
            crops.append(crop)
            for edit, change in PHOTO_EDITS.items():
                copy = largest_face(change(photo))
                hits[edit] += copy is not None and face_hash(crop).is_copy(face_hash(copy))
    return crops, {edit: n / len(crops) for edit, n in hits.items()}


def measure(archive: Path, real: Path, images: int, seed: int = 0) -> dict[str, object]:
    started = time.perf_counter()
    distinct = group_by_content(list(iter_archive(archive)))
    faces, labels, names = [], [], []
    for group in distinct:
        image = decode_grey(group.first.data)
        if image is None or is_blank(image):
            continue
        faces.append(image)
        labels.append(group.label)
        names.append(group.first.name)
    hashes = [face_hash(crop_of(f)) for f in faces]
    hashed = time.perf_counter()
    pairs = near_pairs(hashes)
    compared = time.perf_counter()
    linked = groups(len(hashes), pairs)
    with_match = sum(len(g) for g in linked)
    conflicting = [g for g in linked if len({labels[i] for i in g}) > 1]

    real_crops, real_caught = real_faces(real)
    others = [face_hash(c) for c in real_crops]
    crossing = near_pairs(hashes + others)
    falsely = {b for a, b in crossing if a < len(hashes) <= b}

    rng = np.random.default_rng(seed)
    picked = rng.choice(len(faces), images, replace=False)
    caught: dict[str, float] = {}
    for name, edit in EDITS.items():
        hits = sum(hashes[i].is_copy(face_hash(crop_of(edit(faces[i])))) for i in picked)
        caught[name] = hits / images
    return {
        "thresholds": {"phash_max": PHASH_MAX, "block_max": BLOCK_MAX},
        "distinct_faces": len(faces),
        "faces_with_a_match": with_match,
        "share_with_a_match": with_match / len(faces),
        "matching_pairs": len(pairs),
        "groups": len(linked),
        "groups_with_conflicting_labels": len(conflicting),
        "faces_in_conflicting_groups": sum(len(g) for g in conflicting),
        "other_faces": len(others),
        "other_faces_matching_fer2013": len(falsely),
        "false_match_share": len(falsely) / len(others),
        "edited_faces": images,
        "caught": caught,
        "photo_copies_caught": real_caught,
        "seconds_hashing": round(hashed - started, 1),
        "ms_per_hash": round(1000 * (hashed - started) / len(faces), 3),
        "seconds_comparing_all": round(compared - hashed, 2),
        "example_pairs": [[names[a], names[b]] for a, b in pairs[:40]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fer2013", type=Path, default=SHARED / "fer2013.zip")
    parser.add_argument("--realphotos", type=Path, default=SHARED / "realphotos-dev.zip")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = measure(args.fer2013, args.realphotos, args.images)
    print(
        f"match: pHash distance <= {PHASH_MAX} and BlockMean distance <= {BLOCK_MAX}\n"
        f"{result['distinct_faces']:,} distinct non-blank FER2013 faces: "
        f"{result['faces_with_a_match']:,} ({result['share_with_a_match']:.2%}) match another "
        f"({result['matching_pairs']:,} pairs, {result['groups']:,} groups, "
        f"{result['groups_with_conflicting_labels']:,} with conflicting labels); "
        f"hashing {result['ms_per_hash']} ms/face, all pairs compared in "
        f"{result['seconds_comparing_all']} s\n"
        f"false matches: {result['other_faces_matching_fer2013']} of {result['other_faces']} "
        f"realphotos-dev faces ({result['false_match_share']:.2%}) match a FER2013 face\n"
    )
    print(f"{'edit of ' + str(result['edited_faces']) + ' faces':<28} {'caught':>7}")
    for name, share in result["caught"].items():  # type: ignore[attr-defined]
        print(f"{name:<28} {share:>7.1%}")
    print(f"\n{'edit of realphotos-dev photos':<28} {'caught':>7}")
    for name, share in result["photo_copies_caught"].items():  # type: ignore[attr-defined]
        print(f"{name:<28} {share:>7.1%}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
