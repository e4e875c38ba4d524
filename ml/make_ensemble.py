"""Join packaged models into one ensemble (ml/ensemble.py), calibrate, measure and package it.

    python -m ml.make_ensemble --zip ../shared/data/fer2013.zip \\
        --ferplus ../shared/data/ferplus/fer2013_ferplus_votes.csv \\
        --realphotos ../shared/data/realphotos-dev.zip \\
        --member var/r4 --member var/r6 --release ml/shipped

Each `--member` is a release folder of `python -m ml.train_archive` (its `emotion.keras` and
`model_card.json`). The members must have been chosen on the same validation split: the
ensemble is calibrated on that split (and the real photos' faces), and the card lists every
member's own numbers beside the ensemble's.
"""

import argparse
import json
from pathlib import Path
from typing import Any

import keras

from ml.card import card_markdown, card_of
from ml.dataset import load_archive
from ml.ensemble import ensemble
from ml.evaluate import Protocol, evaluate
from ml.faceset import Faces
from ml.ferplus import read_votes
from ml.inference import Classifier
from ml.keras_classifier import KerasClassifier
from ml.pipeline import MODEL_FILE, release_of
from ml.training import Trained, split_validation

# What a member's card says about it, kept in the ensemble's card.
MEMBER_KEYS = ("command", "epochs", "best_epoch", "note", "calibration")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--ferplus", type=Path, help="FER+ votes CSV (ferplus-test)")
    parser.add_argument("--realphotos", type=Path, help="labelled real photos (zip or folder)")
    parser.add_argument(
        "--member", type=Path, action="append", required=True, help="a release folder"
    )
    parser.add_argument("--release", type=Path, required=True, help="where to write it")
    parser.add_argument("--note", help="how it was made, for the model card")
    return parser.parse_args()


def member_summary(card: dict[str, Any], validation: float) -> dict[str, Any]:
    metrics = {
        key: card["metrics"][key]["balanced_accuracy"]
        for key in ("test_4", "ferplus_test", "realphotos")
        if key in card["metrics"]
    }
    metrics["validation"] = validation
    return {key: card.get(key) for key in MEMBER_KEYS} | {"balanced_accuracy": metrics}


def balanced_accuracy(model: keras.Model | Classifier, faces: Faces) -> float:
    classifier = model if isinstance(model, Classifier) else KerasClassifier(model, None, "")
    return round(evaluate(classifier, faces, seed_balanced=False)["balanced_accuracy"], 4)


def split_of(cards: list[dict[str, Any]]) -> tuple[float, int]:
    """The validation split every member was chosen on (SystemExit when they differ)."""
    splits = {
        (c["training"]["config"]["val_fraction"], c["training"]["config"].get("split_seed", 42))
        for c in cards
    }
    if len(splits) != 1:
        raise SystemExit(f"the members were chosen on different validation splits: {splits}")
    return splits.pop()


def main() -> None:
    args = parse_args()
    cards = [json.loads((m / "model_card.json").read_text()) for m in args.member]
    fraction, seed = split_of(cards)
    data = load_archive(args.zip, read_votes(args.ferplus) if args.ferplus else None)
    protocol = Protocol.load(args.zip, args.ferplus, args.realphotos)
    members = [keras.models.load_model(m / MODEL_FILE, compile=False) for m in args.member]
    model = ensemble(members)
    val = split_validation(data.train, fraction, seed)[1]
    first = cards[0]["training"]
    summary = {
        "config": {"arch": cards[0]["arch"], "val_fraction": fraction, "split_seed": seed},
        "train_counts": first["train_counts"],
        "val_counts": first["val_counts"],
        "targets": first.get("targets", "labels"),
        "parameters": model.count_params(),
        "members": [
            member_summary(c, balanced_accuracy(m, val))
            for c, m in zip(cards, members, strict=True)
        ],
    }
    args.release.mkdir(parents=True, exist_ok=True)
    release = release_of(model, Trained(model, {}, summary, val), protocol, args.release)
    # What the members are chosen by (with the real photos): never a test split.
    release.metrics["validation"] = {"balanced_accuracy": balanced_accuracy(release.served, val)}
    command = "python -m ml.make_ensemble " + " ".join(f"--member {m}" for m in args.member)
    card = card_of(release, data, command, args.note, args.ferplus is not None)
    (args.release / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    (args.release / "MODEL_CARD.md").write_text(card_markdown(card))
    for key in ("validation", "test_4", "ferplus_test", "realphotos"):
        if key in card["metrics"]:
            print(f"{key}: balanced accuracy {card['metrics'][key]['balanced_accuracy']:.4f}")


if __name__ == "__main__":
    main()
