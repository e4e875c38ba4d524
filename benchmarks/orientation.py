"""Photos sent turned: how often the pipeline finds their turn, on labelled real photos.

Every photo of realphotos-dev (or another folder or zip of `<class>/<file>` photos) and its
copies turned by 90°, 180° and 270° goes through `ml.upright.upright_faces`, as the worker
runs it and a contribution's check does (a turned contribution is refused), and the shipped
model classifies the largest face found. Reported:
- upright photos taken as turned (turned by the worker, refused by the contribution check);
- turned copies whose turn was found, and whose answer is the same label as the upright photo's;
- the share of photos that needed the other three turns looked at (the cost), and ms per photo.

    .venv/bin/python -m benchmarks.orientation [--photos ../shared/data/realphotos-dev.zip]
        [--limit N] [--json PATH]
"""

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ml.evaluate import read_labelled_photos
from ml.faces import Face, decode_image
from ml.inference import Classifier, shipped_model_path
from ml.upright import turned, upright_faces

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = ROOT.parent / "shared" / "data" / "realphotos-dev.zip"
UNDO = {90: 270, 180: 180, 270: 90}  # turning by UNDO[d] gives a photo that needs d to be upright


def _label(classifier: Classifier, faces: list[Face]) -> int | None:
    if not faces:
        return None
    largest = max(faces, key=lambda f: f.box[2] * f.box[3])
    return int(classifier.predict(largest.crop[None])[0].argmax())


def measure(photos: Path, limit: int | None) -> dict[str, Any]:
    classifier = Classifier.load(shipped_model_path())
    labelled = read_labelled_photos(photos)[:limit]
    images = [photo.data for photo in labelled]
    rows: dict[int, dict[str, float]] = {d: {"right": 0, "same": 0} for d in UNDO}
    upright = {"turned": 0, "found": 0}
    seconds = 0.0
    for data in images:
        image = decode_image(data)
        started = time.perf_counter()
        faces, _, degrees = upright_faces(image)
        seconds += time.perf_counter() - started
        reference = _label(classifier, faces)
        upright["found"] += bool(faces)
        upright["turned"] += degrees != 0
        for degrees in UNDO:
            sent = turned(image, UNDO[degrees])
            started = time.perf_counter()
            faces, _, found = upright_faces(sent)
            seconds += time.perf_counter() - started
            rows[degrees]["right"] += found == degrees
            same = reference is not None and _label(classifier, faces) == reference
            rows[degrees]["same"] += same
    n = len(images)
    return {
        "photos": n,
        "upright": {
            "face_found": upright["found"] / n,
            "taken_as_turned": upright["turned"],
        },
        "turned": {
            str(d): {"turn_found": r["right"] / n, "same_label": r["same"] / upright["found"]}
            for d, r in rows.items()
        },
        "ms_per_photo": round(1000 * seconds / (4 * n), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--limit", type=int, help="only the first N photos")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = measure(args.photos, args.limit)
    up = result["upright"]
    print(f"{result['photos']} photos, a face found in {up['face_found']:.1%}")
    print(f"upright photos taken as turned: {up['taken_as_turned']}")
    print("\n| copy turned by | turn found | same label as upright |\n|---|---|---|")
    for degrees, row in result["turned"].items():
        print(f"| {degrees}° | {row['turn_found']:.1%} | {row['same_label']:.1%} |")
    print(f"\n{result['ms_per_photo']} ms per photo (detection with the turns it needed)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
