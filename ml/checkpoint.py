"""A training run's state after every epoch, so that a run cut off anywhere (Ctrl-C, SIGTERM,
SIGKILL, a reboot) continues where it stopped instead of starting over.

Keras' BackupAndRestore keeps the weights, the optimizer's variables (the step count, so the
learning-rate schedule's position, included) and the epoch, but not the rest of what the next
epoch depends on: the dropout layers' seed states, the batches' order and augmentation (their
RNG), the best score so far and the epochs since (ModelCheckpoint and EarlyStopping start
afresh and would overwrite the best epoch's model with the first resumed one), the plateau
schedule's counters, nor the history. `EpochCheckpoint` keeps all of it in `checkpoint/`:

- `epoch-N.weights.h5`: weights and optimizer state after epoch N;
- `state.json`: the epoch, the run's config, best score and epoch, epochs without a better
  score, seed states, callback counters and every epoch's logs; replaced atomically after the
  weights file is complete, so it always names a whole checkpoint.

The best epoch's model is `best.keras` beside it, the history `history.csv` (for people).
"""

import csv
import json
import os
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np

STATE = "state.json"
# What a callback's counters are called: kept so that a resumed plateau schedule waits as long
# as an uninterrupted one would.
PLATEAU_FIELDS = ("wait", "best", "cooldown_counter")


class Batches(Protocol):
    """What the checkpoint needs of the training batches: the epoch their order and
    augmentation follow from (ml.training.FaceBatches)."""

    epoch: int


class RunMismatch(ValueError):
    """A checkpoint of a run with other parameters: resuming it would mix two runs."""


def read_state(folder: Path) -> dict[str, Any] | None:
    """The last complete checkpoint's state in a work folder, if a run was cut off there."""
    path = folder / "checkpoint" / STATE
    return json.loads(path.read_text()) if path.is_file() else None


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _seed_states(model: keras.Model) -> list[keras.Variable]:
    """The variables that are not weights: the dropout layers' seed generator states."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


class EpochCheckpoint(keras.callbacks.Callback):
    """Checkpoints every epoch (see the module), keeps the best epoch by `monitor` (higher is
    better) in `best.keras`, and stops after `patience` epochs without a better score."""

    def __init__(
        self,
        folder: Path,
        config: dict[str, Any],
        batches: Batches,
        patience: int,
        monitor: str = "val_score",
        plateau: keras.callbacks.ReduceLROnPlateau | None = None,
    ):
        super().__init__()
        self.folder = folder
        self.dir = folder / "checkpoint"
        self.config = config
        self.batches = batches
        self.patience = patience
        self.monitor = monitor
        self.plateau = plateau
        self.state: dict[str, Any] = {
            "epoch": 0,
            "config": config,
            "best": None,
            "best_epoch": None,
            "wait": 0,
            "history": [],
        }

    @property
    def best_path(self) -> Path:
        return self.folder / "best.keras"

    def restore(self, model: keras.Model) -> int:
        """Load the last checkpoint into `model` (built and compiled) and the batches; the
        epoch to go on from (0 when there is none). RunMismatch when it is another run's."""
        state = read_state(self.folder)
        if state is None:
            return 0
        if state["config"] != self.config:
            changed = sorted(
                k
                for k in state["config"] | self.config
                if state["config"].get(k) != self.config.get(k)
            )
            raise RunMismatch(
                f"{self.folder} holds a run cut off at epoch {state['epoch']} with other "
                f"parameters ({', '.join(changed)} differ)"
            )
        model.optimizer.build(model.trainable_variables)
        model.load_weights(self.dir / f"epoch-{state['epoch']}.weights.h5")
        for variable, value in zip(_seed_states(model), state["seeds"], strict=True):
            variable.assign(np.array(value, dtype=variable.dtype))
        if self.plateau is not None:
            for name in PLATEAU_FIELDS:
                setattr(self.plateau, name, state["plateau"][name])
        self.batches.epoch = state["epoch"]
        self.state = state
        return int(state["epoch"])

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = {k: float(v) for k, v in (logs or {}).items()}
        state = self.state
        score = logs.get(self.monitor)
        if score is not None and (state["best"] is None or score > state["best"]):
            state.update(best=score, best_epoch=epoch + 1, wait=0)
            self.model.save(self.best_path)
        else:
            state["wait"] += 1
        state["epoch"] = epoch + 1
        state["history"].append({"epoch": epoch + 1, **logs})
        state["seeds"] = [keras.ops.convert_to_numpy(v).tolist() for v in _seed_states(self.model)]
        if self.plateau is not None:
            state["plateau"] = {name: float(getattr(self.plateau, name)) for name in PLATEAU_FIELDS}
        self.dir.mkdir(parents=True, exist_ok=True)
        weights = self.dir / f"epoch-{epoch + 1}.weights.h5"
        self.model.save_weights(weights)
        _write_atomically(self.dir / STATE, json.dumps(state))
        for old in self.dir.glob("epoch-*.weights.h5"):
            if old != weights:
                old.unlink()
        write_history(self.folder / "history.csv", state["history"])
        if state["wait"] >= self.patience:
            self.model.stop_training = True

    def finish(self) -> None:
        """The schedule ran out or stopped early: a later call with this folder trains no more
        (it packages, which may have been what was cut off)."""
        self.state["finished"] = True
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.dir / STATE, json.dumps(self.state))


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def history_of(state: dict[str, Any]) -> dict[str, list[float]]:
    """Every epoch's logs, key by key (as read_history gives a CSV)."""
    rows = state["history"]
    keys = [k for k in dict.fromkeys(k for row in rows for k in row) if k != "epoch"]
    return {k: [round(float(row.get(k, float("nan"))), 5) for row in rows] for k in keys}
