"""The trainer's Prometheus metrics: runs by outcome, the progress of the run in hand, and what
the last finished run measured."""

from typing import Any

from prometheus_client import Counter, Gauge

RUNS = Counter(
    "emobot_trainer_runs_total",
    "Training runs finished, by outcome: done, failed, refused (not enough data to train)",
    ["outcome"],
)
RUNNING = Gauge("emobot_trainer_running", "1 while a training run is in progress")
EPOCH = Gauge("emobot_trainer_epoch", "Epochs finished by the run in progress (or the last run)")
EPOCHS = Gauge("emobot_trainer_epochs", "Epochs planned for the run in progress (or the last run)")
VALIDATION = Gauge(
    "emobot_trainer_validation_balanced_accuracy",
    "Validation balanced accuracy after the latest epoch",
)
LAST_BALANCED_ACCURACY = Gauge(
    "emobot_trainer_last_run_balanced_accuracy",
    "Balanced accuracy of the last finished run's model on the database's test split",
)
LAST_SECONDS = Gauge(
    "emobot_trainer_last_run_training_seconds", "Seconds the last finished run spent training"
)
LAST_VERSION = Gauge(
    "emobot_trainer_last_run_model_version", "Registry version of the last finished run's model"
)
LAST_FINISHED = Gauge(
    "emobot_trainer_last_run_timestamp_seconds", "When the last run finished (Unix time)"
)


def started(epochs: int) -> None:
    RUNNING.set(1)
    EPOCH.set(0)
    EPOCHS.set(epochs)


def progressed(progress: dict[str, Any]) -> None:
    EPOCH.set(progress["epoch"])
    EPOCHS.set(progress["epochs"])
    VALIDATION.set(progress["val_bal_acc"])


def finished(
    outcome: str, version: int | None = None, metrics: dict[str, Any] | None = None
) -> None:
    RUNS.labels(outcome).inc()
    RUNNING.set(0)
    LAST_FINISHED.set_to_current_time()
    if version is not None and metrics is not None:
        LAST_VERSION.set(version)
        LAST_BALANCED_ACCURACY.set(metrics["balanced_accuracy"])
        LAST_SECONDS.set(metrics["training"]["train_seconds"])
