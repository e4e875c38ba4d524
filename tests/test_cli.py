"""The `emobot` console script as a user runs it: migrate, import, stats, export."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from emobot.settings import Settings
from tests.conftest import FIXTURE_ARCHIVE, child_env


def emobot(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **child_env(settings),
    }
    return subprocess.run(
        [sys.executable, "-m", "emobot", *args], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_help_lists_the_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "emobot", "--help"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    for command in ("migrate", "import-fer2013", "export", "stats"):
        assert command in out


async def test_migrate_import_stats_export(settings: Settings, sessions: object,
                                           tmp_path: Path) -> None:  # fmt: skip
    assert emobot(settings, "migrate").returncode == 0
    first = emobot(settings, "import-fer2013", str(FIXTURE_ARCHIVE))
    assert first.returncode == 0, first.stderr
    assert "45 files read, 42 distinct images; 42 added" in first.stdout
    second = emobot(settings, "import-fer2013", str(FIXTURE_ARCHIVE))
    assert "0 added, 42 already stored" in second.stdout

    stats = emobot(settings, "stats")
    assert stats.returncode == 0, stats.stderr
    assert "45 FER2013 files read, 42 distinct images stored" in stats.stdout

    out = tmp_path / "dataset.zip"
    export = emobot(settings, "export", str(out), "--split", "train")
    assert export.returncode == 0, export.stderr
    assert "contributors: pseudonyms" in export.stdout
    with zipfile.ZipFile(out) as archive:
        assert all(n.startswith("train/") for n in archive.namelist() if n != "manifest.csv")
        assert "contributor_key" in archive.read("manifest.csv").decode().splitlines()[0]
    raw = emobot(settings, "export", str(out), "--ids", "raw")
    assert raw.returncode == 0 and "contributors: Telegram ids" in raw.stdout, raw.stderr
    with zipfile.ZipFile(out) as archive:
        assert "contributor_id" in archive.read("manifest.csv").decode().splitlines()[0]


def test_missing_archive_is_a_clear_error(settings: Settings) -> None:
    result = emobot(settings, "import-fer2013", "/nonexistent.zip")
    assert result.returncode == 2 and "no such archive" in result.stdout


def test_invalid_setting_names_the_variable(settings: Settings) -> None:
    env = {**os.environ, "BATCH_SIZE": "lots"}
    result = subprocess.run([sys.executable, "-m", "emobot", "stats"], env=env,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode != 0 and "BATCH_SIZE" in result.stderr
