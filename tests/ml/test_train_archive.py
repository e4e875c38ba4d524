"""The archive trainer end to end on the fixture archive: train, evaluate, package."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from ml.train_archive import MODEL_FILE
from tests.conftest import FIXTURE_ARCHIVE


def test_train_then_package_writes_model_and_card(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ml.train_archive", "--zip", str(FIXTURE_ARCHIVE),
         "--epochs", "1", "--out", str(tmp_path / "run"), "--release", str(tmp_path / "rel")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    card = json.loads((tmp_path / "rel" / "model_card.json").read_text())
    test_4 = card["metrics"]["test_4"]
    assert test_4["n"] == 21  # every test file of the fixture archive, copies included
    assert sum(map(sum, test_4["confusion_matrix"])) == 21
    assert 0.0 <= test_4["balanced_accuracy"] <= 1.0
    assert card["training"]["epochs_run"] == 1
    assert "balanced accuracy" in (tmp_path / "rel" / "MODEL_CARD.md").read_text()
    with zipfile.ZipFile(tmp_path / "rel" / MODEL_FILE) as model_file:
        names = model_file.namelist()
    assert "model.weights.h5" in names
