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
"""

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ml.dataset import load_archive
from ml.labels import CLASSES
from ml.metrics import summarise
from ml.training import Faces, TrainConfig, predict_probs, read_history, train

MODEL_FILE = "emotion.keras"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def inference_copy(model: keras.Model) -> keras.Model:
    """The same network and weights without optimizer state: a third of the file size."""
    # Built from the config: clone_model would carry the compiled optimizer across.
    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def evaluate(model: keras.Model, test: Faces) -> dict[str, Any]:
    probs = predict_probs(model, test.x)
    flipped = predict_probs(model, test.x[:, :, ::-1])
    return {
        "test_4": summarise(test.y, probs),
        "test_4_flip_averaged": summarise(test.y, (probs + flipped) / 2),
    }


def card_markdown(card: dict[str, Any]) -> str:
    t4, flip = card["metrics"]["test_4"], card["metrics"]["test_4_flip_averaged"]
    training = card["training"]
    n_train, n_val = sum(training["train_counts"].values()), sum(training["val_counts"].values())
    bal, flip_bal = t4["balanced_accuracy"], flip["balanced_accuracy"]
    seed_bal, flip_seed_bal = t4["seed_balanced_accuracy"], flip["seed_balanced_accuracy"]
    recall = " | ".join(f"{t4['recall'][c]:.3f}" for c in CLASSES)
    matrix = "\n".join(
        f"| {c} | " + " | ".join(str(n) for n in row) + " |"
        for c, row in zip(CLASSES, t4["confusion_matrix"], strict=True)
    )
    return f"""# Shipped model: `{card["arch"]}`

The model `emobot predict` and the worker use when the registry has no active model.

| | |
|---|---|
| architecture | `{card["arch"]}` (`ml/architectures.py`), {training["parameters"]:,} parameters |
| input | 48×48 grey face, standardised per face (`ml/preprocess.py`) |
| output | softmax over {", ".join(CLASSES)} |
| data | {card["data"]} |
| train / validation images | {n_train:,} / {n_val:,} |
| epochs | {card["epochs"]}; kept: epoch {card["best_epoch"]} (best on validation) |
| hardware | {card["hardware"]} |
| command | `{card["command"]}` |
{f"| how it ran | {card['note']} |" if card.get("note") else ""}

## Evaluation (fixed protocol, FER2013 test split: {t4["n"]:,} images in 4 classes)

| metric | plain | flip-averaged |
|---|---|---|
| balanced accuracy (headline) | **{bal:.3f}** | {flip_bal:.3f} |
| accuracy | {t4["accuracy"]:.3f} | {flip["accuracy"]:.3f} |
| seed-balanced accuracy | {seed_bal:.3f} | {flip_seed_bal:.3f} |

Per-class recall ({", ".join(CLASSES)}): {recall}

Confusion matrix (rows true, columns predicted, {", ".join(CLASSES)}):

| true \\ predicted | {" | ".join(CLASSES)} |
|---|---|---|---|---|
{matrix}

Everything was chosen on the validation split carved from train; the test split was used only
for this report. Inference speed: see `benchmarks/README.md`.
"""


def package(
    zip_path: Path, out: Path, release: Path, command: str, note: str | None = None
) -> dict[str, Any]:
    work = out / "work"
    model = keras.models.load_model(work / "best.keras")
    summary = json.loads((work / "summary.json").read_text())
    history = read_history(work / "history.csv")
    data = load_archive(zip_path)
    release.mkdir(parents=True, exist_ok=True)
    inference_copy(model).save(release / MODEL_FILE)
    card = {
        "arch": summary["config"]["arch"],
        "file": MODEL_FILE,
        "command": command,
        "data": "FER2013 train split; byte-identical copies collapsed, copies of test images, "
        "conflicting labels and blank images removed; a 10 % stratified validation split "
        "carved out of it",
        "hardware": f"{cpu_name()}, 2 cores, {keras.backend.backend()} backend",
        # From the history, which a resumed run appends to (the summary covers the last part).
        "epochs": len(history["val_bal_acc"]),
        "best_epoch": int(np.argmax(history["val_bal_acc"])) + 1,
        "note": note,
        "training": summary,
        "history": history,
        "metrics": evaluate(model, data.test),
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
    parser.add_argument("--arch", default="emonet")
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--balance", type=int, default=0)
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=TrainConfig.learning_rate,
        help="peak (seed_cnn: first) learning rate",
    )
    parser.add_argument("--init", help="a saved model of the same architecture to start from")
    parser.add_argument("--out", type=Path, required=True, help="work folder (resumable)")
    parser.add_argument("--release", type=Path, help="where to write the packaged model")
    parser.add_argument("--package-only", action="store_true", help="skip training")
    parser.add_argument("--note", help="how the run went, for the model card")
    args = parser.parse_args()

    if not args.package_only:
        data = load_archive(args.zip)
        config = TrainConfig(
            arch=args.arch,
            epochs=args.epochs,
            balance=args.balance,
            learning_rate=args.learning_rate,
            init=args.init,
        )
        started = time.perf_counter()
        train(data.train, config, args.out / "work")
        print(f"trained in {time.perf_counter() - started:.0f} s")
    command = (
        f"python -m ml.train_archive --zip {args.zip} --arch {args.arch} "
        f"--epochs {args.epochs} --out {args.out}"
        + (
            f" --learning-rate {args.learning_rate}"
            if args.learning_rate != TrainConfig.learning_rate
            else ""
        )
        + (f" --init {args.init}" if args.init else "")
    )
    card = package(args.zip, args.out, args.release or args.out, command, args.note)
    print(json.dumps(card["metrics"]["test_4"], indent=2))


if __name__ == "__main__":
    main()
