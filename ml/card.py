"""A packaged model's card: what it is, how it was trained, how it measures (JSON and
Markdown). The shipped model's is ml/shipped/MODEL_CARD.md."""

import platform
from pathlib import Path
from typing import Any

import keras
import numpy as np

from emobot.labels import CLASSES
from ml.dataset import ArchiveFaces
from ml.evaluate import evaluate
from ml.pipeline import MODEL_FILE, Release


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def card_of(
    release: Release, data: ArchiveFaces, command: str, note: str | None, ferplus: bool
) -> dict[str, Any]:
    trained = release.trained
    history = trained.history
    # The epoch kept: the best by the score the checkpoint was chosen on (an ensemble has no
    # history of its own: its members' cards have theirs).
    chosen_by = history.get("val_score") or history.get("val_bal_acc") or []
    metrics = dict(release.metrics)
    # test-4 averaged over each face and its mirror image, for comparison only.
    metrics["test_4_flip_averaged"] = evaluate(release.served, data.test, mirrored=True)
    return {
        "arch": trained.summary["config"]["arch"],
        "file": MODEL_FILE,
        "command": command,
        "data": "FER2013 train split; byte-identical copies collapsed, copies of test images, "
        "conflicting labels and blank images removed"
        + ("; FER+ 'not a face' and 'unknown' majorities removed" if ferplus else "")
        + "; a 10 % stratified validation split carved out of it",
        "hardware": f"{cpu_name()}, 2 cores, {keras.backend.backend()} backend",
        # From the history, which a resumed run appends to (the summary covers the last part).
        "epochs": len(chosen_by) or None,
        "best_epoch": int(np.argmax(chosen_by)) + 1 if chosen_by else None,
        "note": note,
        "training": trained.summary,
        "history": history,
        "calibration": release.calibration,
        "metrics": metrics,
        "archive": {
            "files": data.report.files,
            "distinct": data.report.distinct,
            "leaks": data.report.leaks,
            "conflicts_4": data.report.conflicts_4,
            "blanks": data.report.blanks,
        },
    }


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


def _architecture(card: dict[str, Any]) -> str:
    arch = f"`{card['arch']}` (`ml/architectures.py`)"
    if members := card["training"].get("members"):
        return f"{len(members)} × {arch}, their logits averaged (`ml/ensemble.py`)"
    return arch


def _epochs_row(card: dict[str, Any]) -> str:
    if card.get("epochs") is None:
        return "| epochs | see each member below |"
    return f"| epochs | {card['epochs']}; kept: epoch {card['best_epoch']} (best on validation) |"


def _members_text(members: list[dict[str, Any]] | None, metrics: dict[str, Any]) -> str:
    if not members:
        return ""
    ensemble_validation = metrics["validation"]["balanced_accuracy"]
    rows = []
    for i, m in enumerate(members, 1):
        scores = m["balanced_accuracy"]
        cells = " | ".join(
            f"{scores[k]:.3f}" if k in scores else "–"
            for k in ("test_4", "ferplus_test", "realphotos")
        )
        rows.append(
            f"| {i} | {m['epochs']}, kept {m['best_epoch']} | {scores['validation']:.3f} | {cells} "
            f"| `{m['command']}` |"
        )
    table = "\n".join(rows)
    return f"""## Members

Each member alone (balanced accuracy; validation measured here, the rest by its own card).
The ensemble's validation balanced accuracy is {ensemble_validation:.3f}.

| member | epochs | validation | test-4 | ferplus-test | real photos | command |
|---|---|---|---|---|---|---|
{table}
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
| architecture | {_architecture(card)}, {training["parameters"]:,} parameters |
| input | 48×48 grey face (uint8); the model standardises each face itself (`ml/layers.py`) |
| output | softmax over {", ".join(CLASSES)} |
| data | {card["data"]} |
| targets | {training.get("targets", "labels")} |
| train / validation images | {n_train:,} / {n_val:,} |
{_epochs_row(card)}
| hardware | {card["hardware"]} |
| command | `{card["command"]}` |
{f"| how it ran | {card['note']} |" if card.get("note") else ""}

{_members_text(training.get("members"), metrics)}
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
