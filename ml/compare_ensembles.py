"""Measure every ensemble of a set of packaged models before building one (ml/make_ensemble.py).

    python -m ml.compare_ensembles --zip ../shared/data/fer2013.zip \\
        --ferplus ../shared/data/ferplus/fer2013_ferplus_votes.csv \\
        --realphotos ../shared/data/realphotos-dev.zip \\
        --member var/r4 --member var/r6 --member var/r7 --json benchmarks/results/ensembles.json

Each member's flatbuffer (what serves) answers every set once; every subset of the members is
then scored from those answers, averaging the members' logits (as ml/ensemble.py does) and, for
comparison, their probabilities. Choose on validation and the real photos: test-4 and
ferplus-test are reported, never chosen on.
"""

import argparse
import hashlib
import itertools
import json
from pathlib import Path

import numpy as np

from ml.dataset import load_archive
from ml.evaluate import Protocol, evaluate
from ml.faceset import Faces
from ml.ferplus import read_votes
from ml.inference import Classifier, Predictor
from ml.pipeline import MODEL_FILE
from ml.training import split_validation

SETS = ("validation", "realphotos", "test_4", "ferplus_test")


class Remembered:
    """A predictor that answers each batch of faces once (the subsets share the members)."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        self.answers: dict[bytes, np.ndarray] = {}

    def predict(self, faces: np.ndarray) -> np.ndarray:
        key = hashlib.sha256(faces.tobytes()).digest() + bytes(str(faces.shape), "ascii")
        if key not in self.answers:
            self.answers[key] = self.predictor.predict(faces)
        return self.answers[key]


class Averaged:
    """The members' answers averaged: their logits (a softmax of the mean log-probability,
    as ml/ensemble.py) or their probabilities."""

    def __init__(self, members: list[Predictor], rule: str):
        self.members = members
        self.rule = rule

    def predict(self, faces: np.ndarray) -> np.ndarray:
        answers = np.stack([m.predict(faces) for m in self.members])
        if self.rule == "probabilities":
            return answers.mean(axis=0)
        logits = np.log(np.clip(answers, 1e-12, 1)).mean(axis=0)
        out = np.exp(logits - logits.max(axis=1, keepdims=True))
        return out / out.sum(axis=1, keepdims=True)


def scores(predictor: Predictor, protocol: Protocol, val_faces: Faces) -> dict[str, float]:
    measured = protocol.evaluate(predictor)
    measured["validation"] = evaluate(predictor, val_faces, seed_balanced=False)
    return {key: round(measured[key]["balanced_accuracy"], 4) for key in SETS if key in measured}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--ferplus", type=Path)
    parser.add_argument("--realphotos", type=Path)
    parser.add_argument("--member", type=Path, action="append", required=True)
    parser.add_argument("--json", type=Path, help="write the table here")
    args = parser.parse_args()
    config = json.loads((args.member[0] / "model_card.json").read_text())["training"]["config"]
    data = load_archive(args.zip, read_votes(args.ferplus) if args.ferplus else None)
    val = split_validation(data.train, config["val_fraction"], config.get("split_seed", 42))[1]
    protocol = Protocol.load(args.zip, args.ferplus, args.realphotos)
    members = {m.name: Remembered(Classifier.load(m / MODEL_FILE)) for m in args.member}
    rows = []
    for k in range(1, len(members) + 1):
        for names in itertools.combinations(members, k):
            for rule in ("logits", "probabilities") if k > 1 else ("-",):
                measured = scores(Averaged([members[n] for n in names], rule), protocol, val)
                rows.append({"members": list(names), "rule": rule} | measured)
    print("| members | mean of | " + " | ".join(SETS) + " |")
    print("|---|---|" + "---|" * len(SETS))
    for row in rows:
        cells = " | ".join(f"{row[s]:.4f}" if s in row else "–" for s in SETS)
        print(f"| {' + '.join(row['members'])} | {row['rule']} | {cells} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
