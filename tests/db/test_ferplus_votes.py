"""FER+ votes stored with the imported FER2013 images (made-up votes for the fixture archive)."""

import csv
from pathlib import Path

from sqlalchemy import select

from cli.importer import import_archive, import_votes
from db.engine import Storage
from db.models import Sample
from db.samples import dataset_version, insert_samples
from ml.ferplus import COLUMNS, read_votes
from tests.conftest import FIXTURE_ARCHIVE
from tests.ml.test_ferplus import fake_votes


async def stored_votes(storage: Storage) -> dict[str, tuple[str, list[str], object]]:
    async with storage.sessions() as session:
        rows = await session.execute(
            select(Sample.sha256, Sample.source, Sample.origins, Sample.ferplus_votes)
        )
        return {sha: (source, origins, votes) for sha, source, origins, votes in rows.all()}


async def add_telegram_sample(storage: Storage) -> None:
    async with storage.sessions.begin() as session:
        await insert_samples(
            session,
            [
                {
                    "sha256": "f" * 64,
                    "blob_key": "images/ff",
                    "label": "happy",
                    "split": "train",
                    "source": "telegram",
                    "width": 48,
                    "height": 48,
                    "size_bytes": 1,
                    "origins": ["telegram-file-id"],
                }
            ],
        )


async def test_each_image_gets_the_votes_of_each_of_its_archive_paths(
    storage: Storage, tmp_path: Path
) -> None:
    fake_votes(tmp_path / "votes.csv")
    votes = read_votes(tmp_path / "votes.csv")
    await import_archive(FIXTURE_ARCHIVE, storage.sessions, storage.blobs)
    await add_telegram_sample(storage)

    summary = await import_votes(storage.sessions, votes)
    assert (summary.files, summary.added, summary.already) == (45, 42, 0)
    assert (summary.unmatched, summary.without) == (0, 0)
    assert "42 samples got votes" in summary.table()
    stored = await stored_votes(storage)
    for source, origins, got in stored.values():
        if source == "telegram":
            assert got is None  # contributed photos keep their labels
        else:
            assert got == {path: list(votes[path].counts) for path in origins}
    # The first happy image and its two byte-identical copies: one sample, three voted files.
    assert sorted(len(v) for s, _, v in stored.values() if s == "fer2013")[-1] == 3
    happy = votes["train/happy/Training_dup00001.jpg"].counts
    assert happy[COLUMNS.index("happiness")] == 6

    again = await import_votes(storage.sessions, votes)
    assert (again.added, again.already, again.unmatched) == (0, 42, 0)
    assert await stored_votes(storage) == stored


async def test_new_votes_replace_old_ones_and_unknown_files_are_counted(
    storage: Storage, tmp_path: Path
) -> None:
    fake_votes(tmp_path / "votes.csv")
    await import_archive(FIXTURE_ARCHIVE, storage.sessions, storage.blobs)
    await import_votes(storage.sessions, read_votes(tmp_path / "votes.csv"))
    async with storage.sessions() as session:
        before = await dataset_version(session)

    rows = list(csv.DictReader((tmp_path / "votes.csv").open()))
    changed = next(r for r in rows if r["file"].startswith("train/surprise/"))
    changed.update(happiness="0", surprise="10")
    # A file this votes file has no row for: its image keeps the votes it had.
    missing = next(r for r in rows if r["file"].startswith("train/fear/"))
    rows.remove(missing)
    rows.append({**changed, "file": "train/happy/Training_not_imported.jpg"})
    with (tmp_path / "new.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    summary = await import_votes(storage.sessions, read_votes(tmp_path / "new.csv"))
    assert (summary.files, summary.added, summary.already) == (45, 1, 40)
    assert (summary.unmatched, summary.without) == (1, 0)
    stored = {o: v[o] for _, origins, v in (await stored_votes(storage)).values() for o in origins}
    assert stored[changed["file"]][COLUMNS.index("surprise")] == 10
    assert stored[missing["file"]] == [int(missing[c]) for c in COLUMNS]
    async with storage.sessions() as session:
        assert await dataset_version(session) != before  # training caches are not reused
