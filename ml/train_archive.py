"""Train a model from the FER2013 archive, evaluate it by the protocol, package it with a card.

The command line of ml.pipeline (which /retrain and `emobot train` share) over the archive,
with no database. How the shipped model was made: see its card, ml/shipped/MODEL_CARD.md;
for example
    python -m ml.train_archive --zip ../shared/data/fer2013.zip --arch emonet --epochs 16 \\
        --out var/ship
    python -m ml.train_archive --zip ../shared/data/fer2013.zip --arch emonet --epochs 14 \\
        --learning-rate 5e-4 --init var/ship/work/best.keras --out var/finetune
    python -m ml.train_archive --zip ../shared/data/fer2013.zip --out var/finetune \\
        --package-only --release ml/shipped
Training writes into `OUT/work`, with a checkpoint after every epoch: the same command with
`--resume` continues a run that was cut off (Ctrl-C, a kill, a reboot) from its last epoch.
`--package-only` calibrates and evaluates the best epoch there again and writes the
inference-only model, its LiteRT flatbuffer, `model_card.json` and `MODEL_CARD.md` to the
release folder.

With `--ferplus VOTES.csv` the targets are the FER+ vote shares (ml/ferplus.py) and the card
reports ferplus-test too; `--realphotos ZIP` adds a second validation set of faces cut from
labelled real photos (the best epoch is chosen on both) and reports it; `--aligned` also shows
training the FER2013 faces re-cut as inference cuts faces (ml.dataset.aligned_like_inference).
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from ml.card import card_markdown, card_of
from ml.checkpoint import RunMismatch, read_state
from ml.dataset import aligned_like_inference, load_archive
from ml.evaluate import Protocol
from ml.faceset import Faces
from ml.ferplus import read_votes
from ml.inference import flatbuffer_path
from ml.params import TrainConfig
from ml.pipeline import MODEL_FILE, make_release, package
from ml.training import trained_in


def with_aligned_views(faces: Faces, cache: Path) -> Faces:
    """`faces` with their inference-style crops (computed once, kept in `cache`)."""
    if cache.is_file():
        aligned = np.load(cache)
    else:
        aligned = aligned_like_inference(faces.x)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, aligned)
    return Faces(faces.x, faces.y, faces.targets, aligned)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--ferplus", type=Path, help="FER+ votes CSV: train on vote shares")
    parser.add_argument("--realphotos", type=Path, help="labelled real photos (zip or folder)")
    parser.add_argument("--aligned", action="store_true", help="show faces aligned too")
    parser.add_argument("--arch", default=TrainConfig.arch)
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--balance", type=int, default=TrainConfig.balance)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=TrainConfig.learning_rate,
        help="peak (seed_cnn: first) learning rate",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=TrainConfig.seed,
        help="the run's randomness (dropout, batch order, augmentation); the validation "
        "split stays the same whatever it is",
    )
    parser.add_argument(
        "--teacher",
        help="distil: a packaged model whose answers on the training faces make up "
        "--teacher-weight of the targets",
    )
    parser.add_argument("--teacher-weight", type=float, default=TrainConfig.teacher_weight)
    parser.add_argument("--init", help="a saved model of the same architecture to start from")
    parser.add_argument(
        "--patience",
        type=int,
        help="stop after this many epochs without a better validation "
        "score (default: never, the whole schedule runs)",
    )
    parser.add_argument("--out", type=Path, required=True, help="work folder (resumable)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run cut off in OUT from its last checkpoint (its parameters)",
    )
    parser.add_argument("--release", type=Path, help="where to write the packaged model")
    parser.add_argument("--package-only", action="store_true", help="skip training")
    parser.add_argument("--note", help="how the run went, for the model card")
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="train in mixed bfloat16 (twice as fast on CPUs with AMX or AVX-512 BF16; "
        "the packaged model is float32)",
    )
    return parser.parse_args()


def command_of(args: argparse.Namespace, config: TrainConfig) -> str:
    """The command that trained the model, for its card: the data flags as given, the
    training's from `config` (what the run used, also after --resume or --package-only)."""
    defaults = TrainConfig()
    flags = [
        f"--zip {args.zip}",
        f"--arch {config.arch}",
        f"--epochs {config.epochs}",
        f"--out {args.out}",
        *([f"--ferplus {args.ferplus}"] if args.ferplus else []),
        *([f"--realphotos {args.realphotos}"] if args.realphotos else []),
        *(["--aligned"] if args.aligned else []),
        *(["--bf16"] if args.bf16 else []),
        *([f"--balance {config.balance}"] if config.balance != defaults.balance else []),
        *(
            [f"--batch-size {config.batch_size}"]
            if config.batch_size != defaults.batch_size
            else []
        ),
        *(
            [f"--learning-rate {config.learning_rate}"]
            if config.learning_rate != defaults.learning_rate
            else []
        ),
        *([f"--seed {config.seed}"] if config.seed != defaults.seed else []),
        *([f"--init {config.init}"] if config.init else []),
        *(
            [f"--teacher {config.teacher} --teacher-weight {config.teacher_weight}"]
            if config.teacher
            else []
        ),
        *([f"--patience {config.patience}"] if config.patience != config.epochs else []),
    ]
    return " ".join(["python -m ml.train_archive", *flags])


def config_of(args: argparse.Namespace, work: Path) -> TrainConfig:
    """The run's parameters: the flags', or with `--resume` those of the run cut off in
    `work` (SystemExit when there is none, or when one is there and `--resume` is not given)."""
    state = read_state(work)
    if args.resume:
        if state is None:
            raise SystemExit(f"nothing to resume: no checkpoint in {work}")
        print(f"resuming the run in {work} after epoch {state['epoch']}", flush=True)
        return TrainConfig(**state["config"])
    if state is not None:
        raise SystemExit(
            f"{work} holds a run (epoch {state['epoch']} of {state['config']['epochs']}): "
            "--resume continues it; another --out starts a new one"
        )
    return TrainConfig(
        arch=args.arch,
        epochs=args.epochs,
        balance=args.balance,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        init=args.init,
        teacher=args.teacher,
        teacher_weight=args.teacher_weight,
        patience=args.patience or args.epochs,
    )


def main() -> None:
    args = parse_args()
    if args.bf16:
        keras.config.set_dtype_policy("mixed_bfloat16")
    work = args.out / "work"
    data = load_archive(args.zip, read_votes(args.ferplus) if args.ferplus else None)
    protocol = Protocol.load(args.zip, args.ferplus, args.realphotos)
    if args.package_only:
        trained = trained_in(work, data.train)
        release = package(trained, trained.summary["config"]["arch"], protocol, work / "release")
    else:
        config = config_of(args, work)
        train_faces = data.train
        if args.aligned:
            train_faces = with_aligned_views(train_faces, args.out / "aligned.npy")
        started = time.perf_counter()
        try:
            release = make_release(train_faces, config, work, protocol, resume=args.resume)
        except RunMismatch as exc:
            raise SystemExit(str(exc)) from None
        print(f"trained in {time.perf_counter() - started:.0f} s")
    target = args.release or args.out
    target.mkdir(parents=True, exist_ok=True)
    if target / MODEL_FILE != release.path:
        for path in (release.path, flatbuffer_path(release.path)):
            shutil.copyfile(path, target / path.name)
    config = TrainConfig(**release.trained.summary["config"])
    card = card_of(release, data, command_of(args, config), args.note, args.ferplus is not None)
    (target / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    (target / "MODEL_CARD.md").write_text(card_markdown(card))
    for key in ("test_4", "ferplus_test", "realphotos"):
        if key in card["metrics"]:
            print(f"{key}: balanced accuracy {card['metrics'][key]['balanced_accuracy']:.4f}")


if __name__ == "__main__":
    main()
