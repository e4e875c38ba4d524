"""Face detectors compared on real photos, synthetic group photos and speed.

Detectors (each returns face boxes for a BGR photo):
- `haar`: OpenCV's Haar cascade as the platform used it before (alt2, photos shrunk to 800 px,
  4 neighbours, scale step 1.1, faces ≥ 24 px at that scale);
- `mtcnn`: the `mtcnn` 1.x package (TensorFlow), when it is installed (it is no dependency);
- `blazeface-128`: BlazeFace short-range at its own 128×128 input only;
- `blazeface`: what the platform ships (`ml.faces.find_faces`: BlazeFace at two scales, and a
  face too large for the frame looked for again inside a border).

Measured:
1. realphotos-dev (`../shared/data/realphotos-dev.zip`, 851 photos): the share of photos with a
   face found; and the balanced accuracy of the shipped model on them (largest face; no face
   counts as wrong) with Haar and its unaligned crop (before), with BlazeFace's box cut as a
   FER2013-like square (unaligned), and aligned, through `emobot predict --json` (shipped);
2. synthetic group photos: FER2013 test faces pasted at 24–200 px (log-uniform) into real
   1280×960 photos (coffee, the astronaut, Grace Hopper, and their mirror images; the two
   portraits' own faces count as faces too): recall by face size and false boxes;
3. the grid: six FER2013 test faces of 96 px in a 3×2 grid on grey: faces found;
4. ms per photo on one core (one thread, OpenCV too) for `tests/data/faces/group_three.jpg`
   at 1280×960 and shrunk to 640×480: decoding, detection (crops included), both.

    .venv/bin/python -m benchmarks.faces [--json PATH] [--seconds 3] [--detectors a,b]
        [--realphotos ZIP] [--fer2013 ZIP]
    .venv/bin/python -m benchmarks.faces --sheet benchmarks/results/alignment.png

`--sheet` only draws every face of the public-domain test photos before and after alignment.

Sets whose data is missing are skipped with the reason printed.
"""

import argparse
import csv
import io
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import matplotlib
import numpy as np

from benchmarks.model import timed
from emobot.labels import CLASS_INDEX, CLASSES
from ml.faces import decode_image, find_faces, grey
from ml.preprocess import FACE_SIZE

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "tests" / "data" / "faces"
SHARED = ROOT.parent / "shared" / "data"
Box = tuple[int, int, int, int]
Detector = Callable[[np.ndarray], list[Box]]
SIZE_BINS = (24, 40, 64, 100, 150, 201)
SYNTHETIC_PHOTOS = 60
FACES_PER_PHOTO = 6


def haar() -> Detector:
    """The detector the platform had before BlazeFace (ml/faces.py at commit 29bd223)."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_alt2.xml")

    def detect(image: np.ndarray) -> list[Box]:
        g = grey(image)
        scale = min(1.0, 800 / max(g.shape))
        small = cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        found = cascade.detectMultiScale(
            cv2.equalizeHist(small), scaleFactor=1.1, minNeighbors=4, minSize=(24, 24)
        )
        boxes = [tuple(round(v / scale) for v in b) for b in np.asarray(found).reshape(-1, 4)]
        kept: list[Box] = []
        for box in sorted(boxes, key=lambda b: -b[2] * b[3]):  # the larger of nested boxes
            if all(_inside_share(box, k) < 0.5 for k in kept):
                kept.append(box)  # type: ignore[arg-type]
        return kept

    return detect


def mtcnn() -> Detector | None:
    try:
        from mtcnn import MTCNN
    except ImportError:
        return None
    model = MTCNN()
    return lambda image: [
        tuple(face["box"]) for face in model.detect_faces(np.ascontiguousarray(image[:, :, ::-1]))
    ]


def blazeface_128() -> Detector:
    from ml.blazeface import COARSE_MIN_SCORE, COARSE_SIDE, BlazeFace, _suppress

    model = BlazeFace()

    def detect(image: np.ndarray) -> list[Box]:
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        found = model._search(rgb, COARSE_SIDE, COARSE_MIN_SCORE, square=True)
        return [_int_box(d.box) for d in _suppress(*found)] if found else []

    return detect


def blazeface() -> Detector:
    return lambda image: [face.box for face in find_faces(image) if face.landmarks is not None]


DETECTORS: dict[str, Callable[[], Detector | None]] = {
    "haar": haar,
    "mtcnn": mtcnn,
    "blazeface-128": blazeface_128,
    "blazeface": blazeface,
}


def _int_box(box: tuple[float, ...]) -> Box:
    x, y, w, h = (round(v) for v in box)
    return x, y, w, h


def _inside_share(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return 0.0 if w <= 0 or h <= 0 else w * h / min(a[2] * a[3], b[2] * b[3])


def _matches(box: Box, truth: Box) -> bool:
    """A detector box is a find when its centre lies in the true face square and its size is
    within 0.3–1.6 of it (detectors frame faces differently: Haar wider, BlazeFace tighter)."""
    x, y, w, h = box
    tx, ty, side, _ = truth
    cx, cy = x + w / 2, y + h / 2
    return tx <= cx <= tx + side and ty <= cy <= ty + side and 0.3 * side <= max(w, h) <= 1.6 * side


# Real photos -------------------------------------------------------------------------------


def read_realphotos(path: Path) -> list[tuple[str, bytes, int]]:
    with zipfile.ZipFile(path) as archive:
        rows = list(csv.DictReader(io.TextIOWrapper(archive.open("labels.csv"), "utf-8")))
        return [(r["file"], archive.read(r["file"]), CLASS_INDEX[r["label"]]) for r in rows]


def balanced_accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean([(predicted[y == k] == k).mean() for k in range(len(CLASSES))]))


def fer_square(image: np.ndarray, box: Box, scale: float, lift: float) -> np.ndarray:
    """An unaligned 48×48 crop: a square of `scale` × the box, its centre `lift` box sides
    above the box's centre, greyed and resized."""
    x, y, w, h = box
    side = max(w, h) * scale
    cx, cy = x + w / 2, y + h / 2 - lift * h
    matrix = np.array(
        [
            [FACE_SIZE / side, 0, FACE_SIZE / 2 - cx * FACE_SIZE / side],
            [0, FACE_SIZE / side, FACE_SIZE / 2 - cy * FACE_SIZE / side],
        ]
    )
    return cv2.warpAffine(
        grey(image),
        matrix,
        (FACE_SIZE, FACE_SIZE),
        flags=cv2.INTER_AREA,
        borderMode=cv2.BORDER_REPLICATE,
    )


def realphotos(path: Path, detectors: dict[str, Detector]) -> dict[str, Any]:
    from ml.inference import Classifier, shipped_model_path

    photos = read_realphotos(path)
    images = [decode_image(data) for _, data, _ in photos]
    y = np.array([label for _, _, label in photos])
    found = {
        name: [max(detect(image), key=lambda b: b[2] * b[3], default=None) for image in images]
        for name, detect in detectors.items()
    }
    result: dict[str, Any] = {
        "photos": len(photos),
        "face_found": {
            n: round(sum(b is not None for b in f) / len(f), 4) for n, f in found.items()
        },
    }
    classifier = Classifier.load(shipped_model_path())

    def accuracy(crops: list[np.ndarray | None]) -> float:
        given = [c for c in crops if c is not None]
        probs = classifier.predict(np.stack(given)) if given else np.zeros((0, len(CLASSES)))
        it = iter(probs.argmax(axis=1))
        return balanced_accuracy(y, np.array([next(it) if c is not None else -1 for c in crops]))

    accuracies = {}
    if "haar" in found:  # the crop the platform cut around Haar's box: 1.1 × the box, centred
        pairs = zip(images, found["haar"], strict=True)
        crops = [fer_square(i, b, 1.1, 0) if b else None for i, b in pairs]
        accuracies["haar, unaligned"] = accuracy(crops)
    if "blazeface" in found:
        # BlazeFace's box on FER2013's faces (benchmarks/fer_framing.py): 0.85 of the image,
        # its centre 0.09 box sides below the image's.
        pairs = zip(images, found["blazeface"], strict=True)
        crops = [fer_square(i, b, 1.18, 0.09) if b else None for i, b in pairs]
        accuracies["blazeface, unaligned"] = accuracy(crops)
        accuracies["blazeface, aligned (emobot predict --json)"] = predict_cli(photos, y)
    result["balanced_accuracy"] = {k: round(v, 4) for k, v in accuracies.items()}
    return result


def predict_cli(photos: list[tuple[str, bytes, int]], y: np.ndarray) -> float:
    """The evaluation protocol's way: `emobot predict --json` over the photos' folder, each
    photo's largest face, a photo without one counting as wrong."""
    with tempfile.TemporaryDirectory() as folder:
        for name, data, _ in photos:
            (Path(folder) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(folder) / name).write_bytes(data)
        out = subprocess.run(
            [sys.executable, "-m", "cli", "predict", "--json", folder],
            capture_output=True,
            text=True,
            check=False,
        )
        predicted = {}
        for line in out.stdout.splitlines():
            result = json.loads(line)
            faces = result.get("faces") or []
            name = str(Path(result["path"]).relative_to(folder))
            largest = max(faces, key=lambda f: f["box"][2] * f["box"][3], default=None)
            predicted[name] = CLASS_INDEX[largest["label"]] if largest else -1
    return balanced_accuracy(y, np.array([predicted.get(name, -1) for name, _, _ in photos]))


# Synthetic group photos --------------------------------------------------------------------


def backgrounds() -> list[tuple[np.ndarray, list[Box]]]:
    """1280×960 real photos and their own faces: coffee (none), the astronaut and Grace Hopper
    (one each, boxes from tests/data/faces/make_photos.py), and their mirror images."""
    coffee = cv2.imread(str(PHOTOS / "coffee.jpg"))
    astronaut = cv2.imread(str(PHOTOS / "astronaut.jpg"))
    hopper = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    sources = [(coffee, []), (astronaut, [(173, 76, 100, 100)]), (hopper, [(166, 143, 200, 200)])]
    out = []
    for image, faces in sources:
        sx, sy = 1280 / image.shape[1], 960 / image.shape[0]
        big = cv2.resize(image, (1280, 960), interpolation=cv2.INTER_CUBIC)
        # A stretched face stays a face; its square is the stretched box's larger side.
        boxes = [
            (round(x * sx), round(y * sy), round(max(w * sx, h * sy)), 0) for x, y, w, h in faces
        ]
        out.append((big, boxes))
        mirrored = [(1280 - x - side, y, side, 0) for x, y, side, _ in boxes]
        out.append((np.ascontiguousarray(big[:, ::-1]), mirrored))
    return out


def fer_test_faces(path: Path, count: int, seed: int) -> list[np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        names = sorted(
            n for n in archive.namelist() if n.startswith("test/") and n.endswith(".jpg")
        )
        picked = np.random.default_rng(seed).choice(len(names), count, replace=False)
        return [
            cv2.imdecode(np.frombuffer(archive.read(names[i]), np.uint8), cv2.IMREAD_GRAYSCALE)
            for i in picked
        ]


def synthetic_groups(fer2013: Path) -> list[tuple[np.ndarray, list[Box]]]:
    rng = np.random.default_rng(2013)
    faces = iter(fer_test_faces(fer2013, SYNTHETIC_PHOTOS * FACES_PER_PHOTO, seed=1))
    scenes = backgrounds()
    photos = []
    for i in range(SYNTHETIC_PHOTOS):
        image, own = scenes[i % len(scenes)]
        image = image.copy()
        boxes = list(own)
        taken = [(x, y, s) for x, y, s, _ in own]
        while len(boxes) < len(own) + FACES_PER_PHOTO:
            side = int(np.exp(rng.uniform(np.log(SIZE_BINS[0]), np.log(SIZE_BINS[-1] - 1))))
            x, y = int(rng.integers(0, 1280 - side)), int(rng.integers(0, 960 - side))
            if any(
                x < tx + ts and tx < x + side and y < ty + ts and ty < y + side
                for tx, ty, ts in taken
            ):
                continue
            face = next(faces)
            interpolation = cv2.INTER_CUBIC if side > FACE_SIZE else cv2.INTER_AREA
            image[y : y + side, x : x + side] = cv2.resize(
                face, (side, side), interpolation=interpolation
            )[..., None]
            taken.append((x, y, side))
            boxes.append((x, y, side, side))
        photos.append((image, [(x, y, s, s) for x, y, s, _ in boxes]))
    return photos


def score_groups(photos: list[tuple[np.ndarray, list[Box]]], detect: Detector) -> dict[str, Any]:
    found_by_bin = np.zeros(len(SIZE_BINS) - 1)
    total_by_bin = np.zeros(len(SIZE_BINS) - 1)
    false_boxes = 0
    for image, truth in photos:
        boxes = detect(image)
        hit = set()
        for box in boxes:
            matched = [i for i, t in enumerate(truth) if _matches(box, t)]
            if matched:
                hit.add(matched[0])
            else:
                false_boxes += 1
        for i, (_, _, side, _) in enumerate(truth):
            k = min(int(np.searchsorted(SIZE_BINS, side, side="right")) - 1, len(SIZE_BINS) - 2)
            total_by_bin[k] += 1
            found_by_bin[k] += i in hit
    labels = [f"{a}-{b - 1}" for a, b in itertools.pairwise(SIZE_BINS)]
    return {
        "faces": int(total_by_bin.sum()),
        "recall": round(float(found_by_bin.sum() / total_by_bin.sum()), 4),
        "recall_by_size": {
            label: round(float(f / t), 3) if t else None
            for label, f, t in zip(labels, found_by_bin, total_by_bin, strict=True)
        },
        "false_boxes": false_boxes,
    }


def grid(fer2013: Path) -> np.ndarray:
    """Six FER2013 test faces of 96 px in a 3×2 grid with 32 px gaps on grey."""
    canvas = np.full((2 * 96 + 3 * 32, 3 * 96 + 4 * 32, 3), 128, np.uint8)
    for i, face in enumerate(fer_test_faces(fer2013, 6, seed=6)):
        row, col = divmod(i, 3)
        x, y = 32 + col * 128, 32 + row * 128
        canvas[y : y + 96, x : x + 96] = cv2.resize(face, (96, 96), interpolation=cv2.INTER_CUBIC)[
            ..., None
        ]
    return canvas


# Speed -------------------------------------------------------------------------------------


def speed(detectors: dict[str, Detector], seconds: float) -> dict[str, dict[str, Any]]:
    photo = cv2.imread(str(PHOTOS / "group_three.jpg"))
    result: dict[str, dict[str, Any]] = {}
    for width, height in ((640, 480), (1280, 960)):
        image = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
        data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        decode = statistics.median(timed(lambda d=data: decode_image(d), seconds))
        row: dict[str, Any] = {"decode_ms": round(decode * 1000, 2)}
        for name, detect in detectors.items():
            row[name] = {
                "faces": len(detect(image)),
                "detect_ms": round(
                    statistics.median(timed(lambda i=image, d=detect: d(i), seconds)) * 1000, 2
                ),
            }
        result[f"{width}x{height}"] = row
    return result


def contact_sheet(path: Path) -> None:
    """Every face of the public-domain test photos (two of them turned 20° and −30°), cut
    before (BlazeFace's box as a FER2013-like square) and after alignment, side by side at 3×."""
    astronaut = cv2.imread(str(PHOTOS / "astronaut.jpg"))
    centre = (astronaut.shape[1] / 2, astronaut.shape[0] / 2)
    turned = [
        cv2.warpAffine(
            astronaut,
            cv2.getRotationMatrix2D(centre, angle, 1.0),
            astronaut.shape[1::-1],
            borderMode=cv2.BORDER_REPLICATE,
        )
        for angle in (20, -30)
    ]
    photos = [astronaut, *turned] + [
        cv2.imread(str(PHOTOS / name)) for name in ("three_faces.jpg", "group_three.jpg")
    ]
    tile, gap = 3 * FACE_SIZE, 8
    pairs = [
        np.hstack(
            [
                cv2.resize(crop, (tile, tile), interpolation=cv2.INTER_NEAREST)
                for crop in (fer_square(photo, face.box, 1.18, 0.09), face.crop)
            ]
        )
        for photo in photos
        for face in find_faces(photo)
    ]
    header = np.full((28, 2 * tile), 255, np.uint8)
    for x, text in ((8, "before"), (tile + 8, "after")):
        cv2.putText(header, text, (x, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 0, 1, cv2.LINE_AA)
    columns = 4
    cells = [np.vstack([header, pair]) for pair in pairs]
    cells += [np.full_like(cells[0], 255)] * (-len(cells) % columns)
    spacer = np.full((cells[0].shape[0], gap), 255, np.uint8)
    rows = [
        np.hstack([c for cell in cells[i : i + columns] for c in (cell, spacer)][:-1])
        for i in range(0, len(cells), columns)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack(rows))
    print(f"\n{len(pairs)} faces, before and after alignment: {path}")


# Report ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the numbers here")
    parser.add_argument("--seconds", type=float, default=3.0, help="per speed measurement")
    parser.add_argument("--detectors", default=",".join(DETECTORS), help="which to compare")
    parser.add_argument("--realphotos", type=Path, default=SHARED / "realphotos-dev.zip")
    parser.add_argument("--fer2013", type=Path, default=SHARED / "fer2013.zip")
    parser.add_argument("--sheet", type=Path, metavar="PNG", help="write the alignment sheet here")
    args = parser.parse_args()
    if args.sheet:
        contact_sheet(args.sheet)
        return

    cv2.setNumThreads(1)  # one core: the worker runs one detection per core
    detectors = {}
    for name in args.detectors.split(","):
        detector = DETECTORS[name]()
        if detector is None:
            print(f"{name}: not installed, skipped")
        else:
            detectors[name] = detector
    report: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "load_average_before": round(os.getloadavg()[0], 2),
        "detectors": list(detectors),
    }

    print(f"{os.cpu_count()} CPUs, load average {report['load_average_before']:.1f}")
    report["speed"] = speed(detectors, args.seconds)
    print("\nms per photo, one core (group_three.jpg, 3 faces)")
    print(f"{'photo':>10} {'decode':>7} " + " ".join(f"{n:>22}" for n in detectors))
    for size, row in report["speed"].items():
        cells = " ".join(f"{row[n]['detect_ms']:>15.1f} ({row[n]['faces']} f.)" for n in detectors)
        print(f"{size:>10} {row['decode_ms']:>7.1f} {cells}")

    if args.realphotos.is_file():
        report["realphotos"] = realphotos(args.realphotos, detectors)
        print(f"\nrealphotos-dev ({report['realphotos']['photos']} photos): face found")
        for name, share in report["realphotos"]["face_found"].items():
            print(f"  {name:<16} {share:.1%}")
        print("balanced accuracy of the shipped model (largest face; no face is wrong)")
        for name, value in report["realphotos"]["balanced_accuracy"].items():
            print(f"  {name:<45} {value:.3f}")
    else:
        print(f"\nrealphotos-dev skipped: {args.realphotos} not found")

    if args.fer2013.is_file():
        photos = synthetic_groups(args.fer2013)
        report["synthetic_groups"] = {n: score_groups(photos, d) for n, d in detectors.items()}
        some = next(iter(report["synthetic_groups"].values()))
        print(f"\nsynthetic group photos: {len(photos)} × 1280×960, {some['faces']} faces")
        sizes = list(some["recall_by_size"])
        print(
            f"{'detector':<16} {'recall':>7} "
            + " ".join(f"{s:>8}" for s in sizes)
            + "  false boxes"
        )
        for name, row in report["synthetic_groups"].items():
            by_size = " ".join(f"{row['recall_by_size'][s]:>8.2f}" for s in sizes)
            print(f"{name:<16} {row['recall']:>7.3f} {by_size}  {row['false_boxes']:>11}")
        image = grid(args.fer2013)
        report["grid"] = {n: len(d(image)) for n, d in detectors.items()}
        print(
            "\n3×2 grid of 96 px FER2013 faces: "
            + ", ".join(f"{n} {k} of 6" for n, k in report["grid"].items())
        )
    else:
        print(f"\nsynthetic groups and the grid skipped: {args.fer2013} not found")

    report["load_average_after"] = round(os.getloadavg()[0], 2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
