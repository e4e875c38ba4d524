"""Where FER2013 puts a face in its 48×48 images, measured with the platform's detector.

The alignment (ml/faces.py) cuts faces from photos so that the eyes and the mouth land where
they sit in FER2013's images; this measures those places. Each of N random training images is
enlarged twice and framed by its own edge pixels (the detector wants some context around a
face), run through BlazeFace, and its keypoints mapped back to the 48×48 image. Prints the
median (and spread) of each keypoint and of the detector's box; `--json` writes them.

    .venv/bin/python -m benchmarks.fer_framing [--fer2013 ZIP] [--images 3000] [--json PATH]
"""

import argparse
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np

from ml.faces import detect
from ml.preprocess import FACE_SIZE

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
KEYPOINTS = (
    "eye (image left)",
    "eye (image right)",
    "nose tip",
    "mouth",
    "ear (left)",
    "ear (right)",
)


def measure(archive: Path, count: int, seed: int = 0) -> dict[str, object]:
    with zipfile.ZipFile(archive) as z:
        names = sorted(n for n in z.namelist() if n.startswith("train/") and n.endswith(".jpg"))
        picked = np.random.default_rng(seed).choice(len(names), count, replace=False)
        faces = [
            cv2.imdecode(np.frombuffer(z.read(names[i]), np.uint8), cv2.IMREAD_GRAYSCALE)
            for i in picked
        ]
    margin, scale = FACE_SIZE // 3, 2
    points, boxes = [], []
    for face in faces:
        big = cv2.resize(face, (scale * FACE_SIZE,) * 2, interpolation=cv2.INTER_CUBIC)
        framed = cv2.copyMakeBorder(big, margin, margin, margin, margin, cv2.BORDER_REPLICATE)
        found = detect(framed)
        if found:
            best = max(found, key=lambda d: d.score)
            points.append((best.keypoints - margin) / scale)
            x, y, w, h = best.box
            boxes.append(((x - margin) / scale, (y - margin) / scale, w / scale, h / scale))
    kp = np.array(points)
    eyes = kp[:, 1] - kp[:, 0]
    return {
        "images": count,
        "detected": len(kp),
        "keypoints_median": {
            n: np.median(kp[:, i], axis=0).round(2).tolist() for i, n in enumerate(KEYPOINTS)
        },
        "keypoints_std": {
            n: kp[:, i].std(axis=0).round(2).tolist() for i, n in enumerate(KEYPOINTS)
        },
        "box_median": np.median(np.array(boxes), axis=0).round(2).tolist(),
        "eye_distance_median": round(float(np.median(np.hypot(*eyes.T))), 2),
        "roll_median_degrees": round(
            float(np.degrees(np.median(np.arctan2(eyes[:, 1], eyes[:, 0])))), 2
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fer2013", type=Path, default=SHARED / "fer2013.zip")
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--json", type=Path, metavar="PATH")
    args = parser.parse_args()
    if not args.fer2013.is_file():
        raise SystemExit(f"no FER2013 archive at {args.fer2013} (--fer2013)")
    result = measure(args.fer2013, args.images)
    print(f"{result['detected']} of {result['images']} faces found; in 48×48 pixels (x, y):")
    for name, (x, y) in result["keypoints_median"].items():  # type: ignore[union-attr]
        sx, sy = result["keypoints_std"][name]  # type: ignore[index]
        print(f"  {name:<18} {x:6.2f} {y:6.2f}   (spread {sx:.1f}, {sy:.1f})")
    print(f"  detector box (x, y, w, h): {result['box_median']}")
    print(f"  eye distance {result['eye_distance_median']}, roll {result['roll_median_degrees']}°")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
