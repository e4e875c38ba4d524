"""Train a model from the FER2013 archive, evaluate it by the protocol, package it with a card.

How the shipped model was made (no database needed): 16 epochs from scratch, then two more
cosine cycles, each starting from the last one's best weights (see ml/shipped/MODEL_CARD.md):
    python -m ml.train_archive --zip ../shared/data/fer2013.zip --arch emonet --epochs 16 \\
        --out var/ship
    python -m ml.train_archive --zip ../shared/data/fer2013.zip --arch emonet --epochs 14 \\
        --learning-rate 5e-4 --init var/ship/work/best.keras --out var/finetune
    python -m ml.train_archive --zip ../shared/data/fer2013.zip --arch emonet --epochs 10 \\
        --learning-rate 3e-4 --init var/finetune/work/best.keras --out var/cycle3
    python -m ml.train_archive --zip ../shared/data/fer2013.zip --out var/cycle3 \\
        --package-only --release ml/shipped
Training writes into `OUT/work` (resumable); `--package-only` evaluates the best checkpoint
there and writes the inference-only model, `model_card.json` and `MODEL_CARD.md` to the release
folder.

With `--ferplus VOTES.csv` the targets are the FER+ vote shares (ml/ferplus.py) and the card
reports ferplus-test too; `--realphotos ZIP` adds a second validation set of faces cut from
labelled real photos (the best epoch is chosen on both) and reports it; `--aligned` also shows
training the FER2013 faces re-cut as inference cuts faces (ml.dataset.aligned_like_inference).
"""

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from emobot.labels import CLASSES
from ml.architectures import ARCHITECTURES
from ml.calibration import (
    calibrated,
    expected_calibration_error,
    fit_temperature,
    scaled,
    unsure_threshold,
)
from ml.dataset import aligned_like_inference, load_archive
from ml.evaluate import (
    evaluate,
    evaluate_protocol,
    read_ferplus_test,
    read_labelled_photos,
    real_photo_faces,
)
from ml.ferplus import read_votes
from ml.inference import Classifier, Predictor
from ml.keras_classifier import KerasClassifier, save_for_serving
from ml.params import TrainConfig
from ml.training import (
    Faces,
    read_history,
    split_validation,
    train,
)

MODEL_FILE = "emotion.keras"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def inference_copy(model: keras.Model, arch: str) -> keras.Model:
    """The same network and weights in float32 (whatever precision trained it) and without
    optimizer state: a third of the file size."""
    keras.config.set_dtype_policy("float32")  # packaging ends the process: no one else minds
    copy = ARCHITECTURES[arch]()
    copy.set_weights(model.get_weights())
    return copy


def _protocol(
    classifier: Predictor,
    test: Faces,
    archive: Path,
    ferplus: Path | None,
    photos: Path | None,
    unsure_below: float,
) -> dict[str, Any]:
    """The fixed protocol (with how the confident answers fare at the model's threshold), and
    test-4 averaged over each face and its mirror image."""
    metrics = evaluate_protocol(classifier, archive, ferplus, photos, unsure_below)
    metrics["test_4_flip_averaged"] = evaluate(classifier, test, mirrored=True)
    return metrics


def calibrate(
    model: keras.Model, val: Faces, real: Faces | None, ferplus_test: Faces | None
) -> tuple[keras.Model, dict[str, Any]]:
    """`model` with its temperature fitted on the validation faces (the
    split carved from train and the real photos' faces), the expected calibration error
    before and after on each set, and the top probability below which a reply is unsure."""
    fit_on = [val] + ([real] if real is not None else [])
    classifier = KerasClassifier(model, None, model.name)
    probs = np.concatenate([classifier.predict(f.x) for f in fit_on])
    y = np.concatenate([f.y for f in fit_on])
    temperature = fit_temperature(probs, y)
    sets = {"validation": val, "realphotos": real, "ferplus_test": ferplus_test}
    ece = {}
    for name, faces in sets.items():
        if faces is not None:
            p = classifier.predict(faces.x)
            ece[name] = {
                "before": round(expected_calibration_error(p, faces.y), 4),
                "after": round(expected_calibration_error(scaled(p, temperature), faces.y), 4),
            }
    return calibrated(model, temperature), {
        "temperature": round(temperature, 4),
        "unsure_below": unsure_threshold(scaled(probs, temperature), y),
        "fitted_on": ["validation"] + (["realphotos"] if real is not None else []),
        "expected_calibration_error": ece,
    }


def real_validation(path: Path) -> Faces:
    """The faces found in labelled real photos, as a validation set for choosing the epoch."""
    crops, labels = real_photo_faces(read_labelled_photos(path))
    found = [i for i, c in enumerate(crops) if c is not None]
    return Faces(np.stack([crops[i] for i in found]), labels[found])


def with_aligned_views(faces: Faces, cache: Path) -> Faces:
    """`faces` with their inference-style crops (computed once, kept in `cache`)."""
    if cache.is_file():
        aligned = np.load(cache)
    else:
        aligned = aligned_like_inference(faces.x)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, aligned)
    return Faces(faces.x, faces.y, faces.targets, aligned)


def _confident_rows(metrics: dict[str, Any]) -> str:
    rows = []
    for key in ("test_4", "ferplus_test", "realphotos"):
        if confident := metrics.get(key, {}).get("confident"):
            rows.append(
                f"| {key} | {confident['answered']:.1%} | {confident['accuracy']:.3f} "
                f"| {confident['balanced_accuracy']:.3f} |"
            )
    return "\n".join(rows)


def _metrics_rows(metrics: dict[str, Any]) -> str:
    rows = []
    names = {
        "test_4": "test-4 (FER2013 labels)",
        "ferplus_test": "ferplus-test (FER+ majority)",
        "realphotos": "real photos (largest face; none found is wrong)",
    }
    for key, name in names.items():
        if key in metrics:
            m = metrics[key]
            recall = " / ".join(f"{m['recall'][c]:.3f}" for c in CLASSES)
            rows.append(
                f"| {name} | {m['n']:,} | **{m['balanced_accuracy']:.3f}** | {m['accuracy']:.3f} "
                f"| {recall} |"
            )
    return "\n".join(rows)


def _calibration_text(calibration: dict[str, Any] | None) -> str:
    if not calibration:
        return ""
    ece = calibration["expected_calibration_error"]
    rows = "\n".join(
        f"| {name} | {e['before']:.3f} | {e['after']:.3f} |" for name, e in ece.items()
    )
    return f"""## Calibration

Temperature {calibration["temperature"]:.3f}, fitted on {" and ".join(calibration["fitted_on"])}
(temperature scaling: `ml/calibration.py`). A face whose top probability is below
{calibration["unsure_below"]:.2f} gets an unsure answer naming its two most likely emotions:
below that, the label is wrong more often than right on the validation faces.

| set | expected calibration error before | after |
|---|---|---|
{rows}
"""


def card_markdown(card: dict[str, Any]) -> str:
    metrics = card["metrics"]
    t4, flip = metrics["test_4"], metrics["test_4_flip_averaged"]
    training = card["training"]
    n_train, n_val = sum(training["train_counts"].values()), sum(training["val_counts"].values())
    matrix = "\n".join(
        f"| {c} | " + " | ".join(str(n) for n in row) + " |"
        for c, row in zip(CLASSES, t4["confusion_matrix"], strict=True)
    )
    real = metrics.get("realphotos")
    found = f" Faces were found in {real['face_found']:.1%} of the real photos." if real else ""
    chosen_on = "the validation split carved from train" + (" and the real photos" if real else "")
    return f"""# Shipped model: `{card["arch"]}`

The model `emobot predict` and the worker use when the registry has no active model.

| | |
|---|---|
| architecture | `{card["arch"]}` (`ml/architectures.py`), {training["parameters"]:,} parameters |
| input | 48×48 grey face, standardised per face (`ml/preprocess.py`) |
| output | softmax over {", ".join(CLASSES)} |
| data | {card["data"]} |
| targets | {training.get("targets", "labels")} |
| train / validation images | {n_train:,} / {n_val:,} |
| epochs | {card["epochs"]}; kept: epoch {card["best_epoch"]} (best on validation) |
| hardware | {card["hardware"]} |
| command | `{card["command"]}` |
{f"| how it ran | {card['note']} |" if card.get("note") else ""}

## Evaluation (fixed protocol)

| set | images | balanced accuracy | accuracy | recall {" / ".join(CLASSES)} |
|---|---|---|---|---|
{_metrics_rows(metrics)}

test-4: seed-balanced accuracy {t4["seed_balanced_accuracy"]:.3f}; flip-averaged balanced
accuracy {flip["balanced_accuracy"]:.3f}.{found}

{_calibration_text(card.get("calibration"))}
Answers at that threshold: the share of faces answered with one emotion, and how right those are
(the rest get the unsure answer; a real photo with no face found is never answered sure).

| set | answered sure | accuracy | balanced accuracy |
|---|---|---|---|
{_confident_rows(metrics)}

Confusion matrix on test-4 (rows true, columns predicted, {", ".join(CLASSES)}):

| true \\ predicted | {" | ".join(CLASSES)} |
|---|---|---|---|---|
{matrix}

Everything was chosen on {chosen_on}; the test split was used only for this report.
Inference speed: see `benchmarks/README.md`.
"""


def package(
    zip_path: Path,
    out: Path,
    release: Path,
    command: str,
    note: str | None = None,
    ferplus: Path | None = None,
    realphotos: Path | None = None,
) -> dict[str, Any]:
    work = out / "work"
    summary = json.loads((work / "summary.json").read_text())
    history = read_history(work / "history.csv")
    data = load_archive(zip_path, read_votes(ferplus) if ferplus else None)
    arch = summary["config"]["arch"]
    model, calibration = calibrate(
        inference_copy(keras.models.load_model(work / "best.keras"), arch),
        split_validation(data.train, TrainConfig.val_fraction, summary["config"]["seed"])[1],
        real_validation(realphotos) if realphotos else None,
        read_ferplus_test(zip_path, read_votes(ferplus)) if ferplus else None,
    )
    # The flatbuffer is what serves, so it is what the protocol measures.
    save_for_serving(model, release / MODEL_FILE)
    served = Classifier.load(release / MODEL_FILE)
    # The epoch kept: the best by the score the checkpoint was chosen on.
    chosen_by = history.get("val_score") or history["val_bal_acc"]
    card = {
        "arch": arch,
        "file": MODEL_FILE,
        "command": command,
        "data": "FER2013 train split; byte-identical copies collapsed, copies of test images, "
        "conflicting labels and blank images removed"
        + ("; FER+ 'not a face' and 'unknown' majorities removed" if ferplus else "")
        + "; a 10 % stratified validation split carved out of it",
        "hardware": f"{cpu_name()}, 2 cores, {keras.backend.backend()} backend",
        # From the history, which a resumed run appends to (the summary covers the last part).
        "epochs": len(chosen_by),
        "best_epoch": int(np.argmax(chosen_by)) + 1,
        "note": note,
        "training": summary,
        "history": history,
        "calibration": calibration,
        "metrics": _protocol(
            served, data.test, zip_path, ferplus, realphotos, calibration["unsure_below"]
        ),
        "archive": {
            "files": data.report.files,
            "distinct": data.report.distinct,
            "leaks": data.report.leaks,
            "conflicts_4": data.report.conflicts_4,
            "blanks": data.report.blanks,
        },
    }
    (release / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    (release / "MODEL_CARD.md").write_text(card_markdown(card))
    return card


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--ferplus", type=Path, help="FER+ votes CSV: train on vote shares")
    parser.add_argument("--realphotos", type=Path, help="labelled real photos (zip or folder)")
    parser.add_argument("--aligned", action="store_true", help="show faces aligned too")
    parser.add_argument("--arch", default=TrainConfig.arch)
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--balance", type=int, default=TrainConfig.balance)
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=TrainConfig.learning_rate,
        help="peak (seed_cnn: first) learning rate",
    )
    parser.add_argument("--init", help="a saved model of the same architecture to start from")
    parser.add_argument(
        "--patience",
        type=int,
        help="stop after this many epochs without a better validation "
        "score (default: never, the whole schedule runs)",
    )
    parser.add_argument("--out", type=Path, required=True, help="work folder (resumable)")
    parser.add_argument("--release", type=Path, help="where to write the packaged model")
    parser.add_argument("--package-only", action="store_true", help="skip training")
    parser.add_argument("--note", help="how the run went, for the model card")
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="train in mixed bfloat16 (twice as fast on CPUs with AMX or AVX-512 BF16; "
        "the packaged model is float32)",
    )
    args = parser.parse_args()
    if args.bf16:
        keras.config.set_dtype_policy("mixed_bfloat16")

    if not args.package_only:
        data = load_archive(args.zip, read_votes(args.ferplus) if args.ferplus else None)
        train_faces = data.train
        if args.aligned:
            train_faces = with_aligned_views(train_faces, args.out / "aligned.npy")
        config = TrainConfig(
            arch=args.arch,
            epochs=args.epochs,
            balance=args.balance,
            learning_rate=args.learning_rate,
            init=args.init,
            patience=args.patience or args.epochs,
        )
        real = real_validation(args.realphotos) if args.realphotos else None
        started = time.perf_counter()
        train(train_faces, config, args.out / "work", real=real)
        print(f"trained in {time.perf_counter() - started:.0f} s")
    command = " ".join(
        [
            "python -m ml.train_archive",
            f"--zip {args.zip}",
            f"--arch {args.arch}",
            f"--epochs {args.epochs}",
            f"--out {args.out}",
        ]
        + ([f"--ferplus {args.ferplus}"] if args.ferplus else [])
        + ([f"--realphotos {args.realphotos}"] if args.realphotos else [])
        + (["--aligned"] if args.aligned else [])
        + (["--bf16"] if args.bf16 else [])
        + (
            [f"--learning-rate {args.learning_rate}"]
            if args.learning_rate != TrainConfig.learning_rate
            else []
        )
        + ([f"--init {args.init}"] if args.init else [])
        + ([f"--patience {args.patience}"] if args.patience else [])
    )
    release = args.release or args.out
    card = package(args.zip, args.out, release, command, args.note, args.ferplus, args.realphotos)
    for key in ("test_4", "ferplus_test", "realphotos"):
        if key in card["metrics"]:
            print(f"{key}: balanced accuracy {card['metrics'][key]['balanced_accuracy']:.4f}")


if __name__ == "__main__":
    main()
