"""Train a model from the FER2013 archive, evaluate it by the protocol, save it with a card.

How the shipped model was made (no database needed):
    python -m ml.train_archive --zip ../shared/data/fer2013.zip --arch emonet --epochs 30 --out DIR
"""

import argparse
import json
import platform
import time
from pathlib import Path

import keras

from ml.dataset import load_archive
from ml.metrics import summarise
from ml.training import TrainConfig, predict_probs, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--arch", default="emonet")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--balance", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="train on the first N images only")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    started = time.perf_counter()
    data = load_archive(args.zip)
    train_faces = data.train
    if args.limit:
        train_faces = train_faces.take(slice(0, args.limit))
    config = TrainConfig(arch=args.arch, epochs=args.epochs, balance=args.balance)
    model, history, summary = train(train_faces, config, args.out / "work")
    test_metrics = summarise(data.test.y, predict_probs(model, data.test.x))
    model.save(args.out / "model.keras")
    card = {
        "arch": args.arch,
        "command": "python -m ml.train_archive "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v),
        "data": "FER2013 train split, byte-identical copies collapsed, copies of test images, "
        "label conflicts and blank images removed; 10 % stratified validation split carved out",
        "training": summary,
        "history": {k: [round(float(v), 5) for v in vs] for k, vs in history.items()},
        "test_4": test_metrics,
        "hardware": f"{platform.processor() or platform.machine()}, "
        f"{keras.backend.backend()} backend, CPU",
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    (args.out / "model_card.json").write_text(json.dumps(card, indent=2))
    print(json.dumps(test_metrics, indent=2))


if __name__ == "__main__":
    main()
