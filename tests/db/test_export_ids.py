"""Exports name contributors by a keyed pseudonym unless raw ids are asked for."""

import csv
import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
from pydantic import SecretStr
from sqlalchemy import select

from cli.importer import import_archive
from db.blobs import LocalBlobStore
from db.contributions import Contribution, add_contribution
from db.engine import Storage
from db.exporter import export_dataset, pseudonym
from db.models import Sample
from db.users import upsert_user

ANN, BOB = 555_000_111, 555_000_222


def face_jpeg(seed: int) -> bytes:
    """A 48×48 grey JPEG of noise: distinct bytes per seed, readable by the importer."""
    noise = np.random.default_rng(seed).integers(0, 256, (48, 48), np.uint8)
    return cv2.imencode(".jpg", noise)[1].tobytes()


async def contribute(storage: Storage) -> None:
    async with storage.sessions.begin() as session:
        for user_id, count in ((ANN, 2), (BOB, 1)):
            await upsert_user(
                session, user_id, username=None, first_name=None, telegram_language=None
            )
            for i in range(count):
                data = face_jpeg(user_id + i)
                sha, key = await storage.blobs.put_content(data)
                item = Contribution(sha, key, "happy", (0, 0, 1, 1), 1, 1, len(data), f"f{i}")
                await add_contribution(session, user_id, item)


async def manifest(storage: Storage, path: Path, **options: object) -> tuple[str, list[dict]]:
    await export_dataset(path, storage.sessions, storage.blobs, **options)  # type: ignore[arg-type]
    with zipfile.ZipFile(path) as archive:
        text = archive.read("manifest.csv").decode()
    return text, list(csv.DictReader(io.StringIO(text)))


async def test_exports_are_pseudonymous_by_default(storage: Storage, tmp_path: Path) -> None:
    await contribute(storage)
    key = SecretStr("operator secret")
    text, rows = await manifest(storage, tmp_path / "a.zip", pseudonym_key=key)
    assert "contributor_id" not in text and str(ANN) not in text and str(BOB) not in text
    names = sorted(r["contributor_key"] for r in rows)
    ann, bob = pseudonym(b"operator secret", ANN), pseudonym(b"operator secret", BOB)
    assert names == sorted([ann, ann, bob]) and len(ann) == 16
    # The same key gives the same pseudonyms in every export; no key, a new one each time.
    _, again = await manifest(storage, tmp_path / "b.zip", pseudonym_key=key)
    assert sorted(r["contributor_key"] for r in again) == names
    _, first = await manifest(storage, tmp_path / "c.zip")
    _, second = await manifest(storage, tmp_path / "d.zip")
    assert {r["contributor_key"] for r in first}.isdisjoint(r["contributor_key"] for r in second)
    assert len({r["contributor_key"] for r in first}) == 2  # still one per person


async def test_raw_ids_on_request_and_only_they_survive_a_reimport(
    storage: Storage, tmp_path: Path, local_store: LocalBlobStore
) -> None:
    await contribute(storage)
    _, rows = await manifest(storage, tmp_path / "raw.zip", raw_ids=True)
    assert sorted(r["contributor_id"] for r in rows) == sorted([str(ANN), str(ANN), str(BOB)])
    await manifest(storage, tmp_path / "pseudo.zip")

    async def reimported(path: Path) -> list[int | None]:
        async with storage.sessions.begin() as session:
            await session.execute(Sample.__table__.delete())
        await import_archive(path, storage.sessions, local_store)
        async with storage.sessions() as session:
            return list(await session.scalars(select(Sample.contributor_id)))

    assert sorted(await reimported(tmp_path / "raw.zip")) == sorted([ANN, ANN, BOB])
    assert await reimported(tmp_path / "pseudo.zip") == [None, None, None]
