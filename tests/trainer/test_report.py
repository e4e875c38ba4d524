"""The /retrain report: the new model and the active one side by side, and the rule's verdict."""

from db.models import TrainingRun
from ml.better import judge
from ml.job_params import JobParams
from trainer.job import JobResult
from trainer.service import Trainer


def measured(db: float, ferplus: float, real: float) -> dict[str, object]:
    table = {
        "n": 10,
        "accuracy": 0.5,
        "recall": dict.fromkeys(("negative", "happy", "surprise", "neutral"), 0.5),
    }
    table["confusion_matrix"] = [[1, 0, 0, 0]] * 4
    return {
        **table,
        "balanced_accuracy": db,
        "dataset": {"version": "3-abc"},
        "ferplus_test": {**table, "n": 6917, "balanced_accuracy": ferplus},
        "realphotos": {**table, "n": 851, "balanced_accuracy": real, "face_found": 1.0},
    }


def test_the_report_shows_both_models_on_every_set_and_the_verdict() -> None:
    rival = {"version": 2, **measured(0.70, 0.82, 0.72)}
    metrics = {
        **measured(0.66, 0.84, 0.74),
        "compared_with": rival,
        "training": {"epochs_run": 3, "train_seconds": 60.0},
    }
    result = JobResult(5, 9, metrics, True, {}, {}, judge(metrics, rival))
    run = TrainingRun(id=4, language="en")
    text = "\n\n".join(Trainer._summary(run, JobParams(epochs=3), result, "en"))
    assert (
        "Mean balanced accuracy on ferplus-test, real photos: v5 0.790, the active v2 0.770."
        in text
    )
    start = text.index("Balanced accuracy of both models")
    table = text[text.index("<pre>", start) + 5 : text.index("</pre>", start)]
    rows = [line.split() for line in table.splitlines()]
    assert rows[0] == ["v5", "v2"]
    assert rows[1][-2:] == ["0.660", "0.700"]  # the database's test split first
    assert rows[2][-2:] == ["0.840", "0.820"] and rows[3][-2:] == ["0.740", "0.720"]
    assert len(text) < 4096
