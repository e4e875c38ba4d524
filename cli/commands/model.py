"""Model commands: predict, evaluate, train, trainer."""

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobot.settings import Settings
from ml.params import ARCH_NAMES, TrainConfig

if TYPE_CHECKING:
    from ml.inference import Classifier
    from ml.job_params import JobParams

MODEL_HELP = (
    "a model file (.tflite, or .keras with its .tflite beside it), a registry version number, "
    "or 'active' for the registry's active model (default: MODEL_PATH, else the shipped model)"
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "predict",
        help="find the faces in images and classify their emotions",
        description="Detect every face in each image (files or folders, searched recursively) "
        "and print its box, emotion and probabilities; for a clip (MP4, MOV, WebM, an animated "
        "GIF, …) its timeline: the faces of every sampled frame and a summary.",
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders")
    p.add_argument("--json", action="store_true", help="one JSON object per image and line")
    p.add_argument("--whole", action="store_true", help="classify each image as one face")
    p.add_argument("--annotate", type=Path, metavar="DIR", help="write pictures with boxes here")
    p.add_argument("--plot", type=Path, metavar="DIR", help="write each clip's chart here")
    p.add_argument("--model", help=MODEL_HELP)
    p.set_defaults(handler=predict)

    p = subparsers.add_parser(
        "evaluate",
        help="measure a model by the fixed protocol",
        description="test-4 (all 7,178 FER2013 test images in 4 classes, FER2013's labels, and "
        "the seed-balanced subsample), ferplus-test (the test images labelled by the FER+ "
        "majority) and labelled real photos through the whole pipeline (largest face; a photo "
        "without a face counts as wrong): accuracy, balanced accuracy, per-class recall, "
        "confusion matrix. Sets whose data is missing are left out.",
    )
    p.add_argument("model", nargs="?", help=MODEL_HELP)
    p.add_argument("--archive", type=Path, help="FER2013 zip (default: FER2013_ZIP setting)")
    p.add_argument("--ferplus", type=Path, help="FER+ votes CSV (default: FERPLUS_CSV)")
    p.add_argument(
        "--photos",
        type=Path,
        help="labelled photos: <class>/<file> in a folder or zip (default: REAL_PHOTOS)",
    )
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(handler=evaluate)

    p = subparsers.add_parser(
        "train",
        help="train a model on the dataset in the database and register it",
        description="Read the trainable samples (PostgreSQL + blob store; FER2013 images with "
        "FER+ votes are trained on their vote shares, those the votes call no face are left "
        "out), train, evaluate on the test split and by the fixed protocol on whatever of its "
        "data is at hand, store the model with its learning-curve and confusion-matrix "
        "pictures and register it.",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=TrainConfig.epochs,
        help=f"epochs (default {TrainConfig.epochs})",
    )
    p.add_argument(
        "--arch",
        default=TrainConfig.arch,
        help=f"{', '.join(ARCH_NAMES)} (default {TrainConfig.arch})",
    )
    p.add_argument(
        "--balance",
        type=int,
        default=TrainConfig.balance,
        metavar="N",
        help="seed-style balancing: at most N training images per class (default 0: all)",
    )
    p.add_argument(
        "--promote",
        action="store_true",
        help="make it the active model if its test balanced accuracy beats the active one's",
    )
    p.add_argument("--archive", type=Path, help="FER2013 zip (default: FER2013_ZIP setting)")
    p.add_argument("--ferplus", type=Path, help="FER+ votes CSV (default: FERPLUS_CSV)")
    p.add_argument("--photos", type=Path, help="labelled photos (default: REAL_PHOTOS)")
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue the run that was cut off (Ctrl-C, a kill) from its last finished epoch, "
        "with its parameters",
    )
    again.add_argument(
        "--restart", action="store_true", help="discard a run that was cut off and start anew"
    )
    p.set_defaults(handler=train)

    p = subparsers.add_parser(
        "convert",
        help="write a Keras model's LiteRT flatbuffer beside it (what serving runs)",
        description="Convert MODEL.keras to MODEL.tflite (float32) and check that both give "
        "the same probabilities; nothing is written when they do not.",
    )
    p.add_argument("model", type=Path, help="a .keras file")
    p.set_defaults(handler=convert)

    p = subparsers.add_parser(
        "trainer",
        help="run queued training runs (from /retrain) one at a time",
        description="Wait for queued training runs (NOTIFY training_runs, polling every "
        "POLL_SECONDS), train, register the model and report to the admin's chat. SIGTERM "
        "finishes the run in hand; an interrupted run is resumed at the next start.",
    )
    p.set_defaults(handler=trainer)


def need_training_libraries() -> None:
    """Training and conversion need TensorFlow and Keras, which a serving install lacks."""
    import importlib.util

    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("tensorflow") is None:
        raise SystemExit(
            "training and model conversion need TensorFlow and Keras: "
            "pip install 'emobot[train]' (the serving install leaves them out)"
        )


def load_classifier(spec: str | None, settings: Settings) -> "Classifier":
    from ml.inference import Classifier, MissingFlatbuffer, shipped_model_path

    if spec is None:
        return Classifier.load(settings.model_path or shipped_model_path())
    if spec == "active" or spec.isdigit():
        return asyncio.run(_load_registered(spec, settings))
    path = Path(spec)
    if not path.is_file():
        raise SystemExit(f"no such model file: {path}")
    try:
        return Classifier.load(path)
    except MissingFlatbuffer as exc:
        raise SystemExit(str(exc)) from None


async def _load_registered(spec: str, settings: Settings) -> "Classifier":
    from db import registry
    from db.engine import open_storage
    from ml.better import unsure_below
    from ml.inference import Classifier, flatbuffer_key

    async with open_storage(settings) as storage:
        async with storage.sessions() as session:
            if spec == "active":
                model = await registry.active_model(session)
                if model is None:
                    raise SystemExit("no model is active in the registry")
            else:
                try:
                    model = await registry.get_model(session, int(spec))
                except registry.UnknownModel:
                    raise SystemExit(f"no model version {spec} in the registry") from None
        # The workers' cache: each version downloaded once.
        key = flatbuffer_key(model.blob_key)
        path = await storage.blobs.fetch_to(key, settings.model_file(model.version))
    return Classifier.load(path, model.version, unsure_below(model.metrics))


def convert(args: argparse.Namespace, settings: Settings) -> int:
    need_training_libraries()
    from ml.keras_classifier import ParityError, convert_file

    if args.model.suffix != ".keras" or not args.model.is_file():
        print(f"not a .keras file: {args.model}", file=sys.stderr)
        return 2
    try:
        flatbuffer = convert_file(args.model)
    except ParityError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(flatbuffer)
    return 0


def predict(args: argparse.Namespace, settings: Settings) -> int:
    from ml.annotate import annotate
    from ml.clip_files import is_clip, predict_clip
    from ml.clips import ClipError
    from ml.predict_files import expand_paths, predict_files

    classifier = load_classifier(args.model, settings)
    for folder in (args.annotate, args.plot):
        if folder:
            folder.mkdir(parents=True, exist_ok=True)
    failed = 0
    written: set[str] = set()
    files = list(expand_paths(args.paths))
    for path in (p for p in files if is_clip(p)):
        try:
            print(predict_clip(path, classifier, settings, as_json=args.json, plot=args.plot))
        except (OSError, ClipError) as exc:
            failed += 1
            if args.json:
                print(json.dumps({"path": str(path), "kind": "video", "error": str(exc)}))
            else:
                print(f"{path}: {exc}", file=sys.stderr)
    results = predict_files(
        classifier,
        [p for p in files if not is_clip(p)],
        whole=args.whole,
        keep_images=bool(args.annotate),
        max_pixels=settings.max_photo_pixels,
    )
    for result in results:
        if result.error is not None:
            failed += 1
        if args.json:
            print(json.dumps(result.as_json(), ensure_ascii=False), flush=True)
        elif result.error is not None:
            print(f"{result.path}: {result.error}", file=sys.stderr)
        else:
            print(_table(result.as_json()))
        if args.annotate and result.image is not None:
            name = _unique_name(result.path.stem, written)
            labels = [
                f"{label} {p.max():.0%}"
                for label, p in zip(result.labels, result.probs, strict=True)
            ]
            boxes = [face.box for face in result.faces]
            (args.annotate / name).write_bytes(annotate(result.image, boxes, labels))
    return 1 if failed else 0


def _table(result: dict[str, Any]) -> str:
    from emobot.labels import CLASSES

    faces = result["faces"]
    lines = [f"{result['path']}: {len(faces)} face{'' if len(faces) == 1 else 's'}"]
    for i, face in enumerate(faces, start=1):
        box = "×".join(str(v) for v in face["box"][2:])
        probs = "  ".join(f"{c} {face['probs'][c]:.2f}" for c in CLASSES)
        lines.append(
            f"  {i}. {face['label']:<9} at {face['box'][0]},{face['box'][1]} {box}  {probs}"
        )
    return "\n".join(lines)


def _unique_name(stem: str, taken: set[str]) -> str:
    name, n = f"{stem}.jpg", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.jpg"
    taken.add(name)
    return name


PROTOCOL_SETS = {
    "test_4": "test-4 (FER2013 test split, its own labels)",
    "ferplus_test": "ferplus-test (FER2013 test split, FER+ majority labels)",
    "realphotos": "real photos (largest face; no face found counts as wrong)",
}


def evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from ml.evaluate import evaluate_protocol
    from runtime.report import metrics_table

    archive = args.archive or settings.fer2013_zip
    ferplus = args.ferplus or settings.ferplus_csv
    photos = args.photos or settings.real_photos
    if not archive.is_file() and not photos.exists():
        print(
            f"nothing to evaluate on: no FER2013 archive at {archive} (--archive or "
            f"FER2013_ZIP) and no photos at {photos} (--photos or REAL_PHOTOS)",
            file=sys.stderr,
        )
        return 2
    classifier = load_classifier(args.model, settings)
    # At the model's own calibrated threshold; the setting for a model without one.
    threshold = classifier.unsure_below or settings.unsure_below
    metrics = evaluate_protocol(classifier, archive, ferplus, photos, threshold)
    if args.json:
        print(json.dumps({"model": classifier.name, **metrics}))
        return 0
    print(classifier.name)
    for key, title in PROTOCOL_SETS.items():
        if key in metrics:
            print(f"\n{title}")
            print(metrics_table(metrics[key]))
        else:
            print(f"\n{title}: left out, its data is missing")
    return 0


def train(args: argparse.Namespace, settings: Settings) -> int:
    need_training_libraries()

    from db.engine import open_storage
    from db.readiness import DatasetNotReady
    from ml.checkpoint import RunMismatch
    from runtime.report import metrics_table
    from trainer.job import run_training

    # One folder for the command's runs: a run cut off there is what --resume continues
    # (the trainer's runs have their own, DATA_DIR/runs/<run id>).
    workdir = settings.data_dir / "runs" / "cli"
    try:
        params = _train_params(args, workdir)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2

    async def progress(p: dict[str, Any]) -> None:
        print(
            f"epoch {p['epoch']}/{p['epochs']}: loss {p['loss']:.4f}, "
            f"validation balanced accuracy {p['val_bal_acc']:.4f}",
            flush=True,
        )

    async def run() -> int:
        async with open_storage(settings) as storage:
            result = await run_training(
                storage,
                params,
                data_dir=settings.data_dir,
                workdir=workdir,
                archive=args.archive or settings.fer2013_zip,
                ferplus=args.ferplus or settings.ferplus_csv,
                photos=args.photos or settings.real_photos,
                on_progress=progress,
                min_train_per_class=settings.min_train_per_class,
                min_test_per_class=settings.min_test_per_class,
                unsure_below=settings.unsure_below,
            )
        dataset, training = result.metrics["dataset"], result.metrics["training"]
        left_out = dataset["not_faces"]
        print(
            f"model version {result.version} registered ({dataset['train']:,} training "
            f"images, targets: {training['targets']}"
            f"{f', {left_out:,} left out as no face by their FER+ votes' if left_out else ''})"
            f"{', promoted' if result.promoted else ''}"
        )
        print("test split in the database:")
        print(metrics_table(result.metrics))
        for key, title in PROTOCOL_SETS.items():
            if key in result.metrics:
                print(f"\n{title}")
                print(metrics_table(result.metrics[key]))
        return 0

    try:
        return asyncio.run(run())
    except DatasetNotReady as exc:
        print(f"training refused. {exc}", file=sys.stderr)
        return 2
    except RunMismatch as exc:
        print(f"training refused: {exc}; --restart starts anew", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"training failed: {exc}", file=sys.stderr)
        return 1


def _train_params(args: argparse.Namespace, workdir: Path) -> "JobParams":
    """The flags' parameters for a new run (written into `workdir`), or with --resume those of
    the run cut off there. ValueError when there is nothing to resume, or when a run that
    finished an epoch would be lost without --restart (one cut off before is started anew)."""
    import shutil

    from ml.checkpoint import read_state
    from ml.job_params import JobParams

    saved = workdir / "params.json"
    if args.resume:
        if read_state(workdir) is None or not saved.is_file():
            raise ValueError(
                f"nothing to resume: no run of `emobot train` in {workdir} finished an epoch"
            )
        params = JobParams.from_dict(json.loads(saved.read_text()))
        print(f"resuming the run in {workdir}: {params.as_dict()}", flush=True)
        return params
    if read_state(workdir) is not None and not args.restart:
        raise ValueError(
            f"a run of `emobot train` was cut off in {workdir}: --resume continues it, "
            "--restart discards it and starts anew"
        )
    params = JobParams(
        arch=args.arch, epochs=args.epochs, balance=args.balance, promote=args.promote
    )
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    saved.write_text(json.dumps(params.as_dict()))
    return params


def trainer(args: argparse.Namespace, settings: Settings) -> None:
    need_training_libraries()
    from emobot.logs import exit_now
    from trainer.service import serve

    serve(settings)
    exit_now(0)
