"""Admin commands as an admin (non-admins: tests/bot/test_common.py)."""

import asyncio
import csv
import io
import zipfile
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import delete, select

from cli.importer import import_archive
from db.blobs import LocalBlobStore
from db.engine import Storage
from db.models import Sample, TrainingRun
from db.registry import active_model, promote, register_model
from emobot.settings import Settings
from tests.bot.conftest import ADMIN, BotHarness, running_harness, text_has
from tests.bot.test_predict_mine import contribute_directly
from tests.conftest import FIXTURE_ARCHIVE


async def test_stats_and_models_and_promote(harness: BotHarness) -> None:
    await contribute_directly(harness, 50, 3)
    admin = harness.user(ADMIN, "Admin", "en")
    admin.send_text("/models")
    assert "No models" in (await harness.reply(admin)).text
    async with harness.storage.sessions() as session:
        for balanced in (0.61, 0.72):
            await register_model(
                session,
                blob_key="models/x",
                arch="seed_cnn",
                metrics={"test_4": {"balanced_accuracy": balanced, "accuracy": 0.7}},
            )
        await session.commit()
    admin.send_text("/promote 2")
    assert "v2 is active" in (await harness.reply(admin)).text
    admin.send_text("/promote 9")
    assert "no model v9" in (await harness.reply(admin)).text
    admin.send_text("/promote")
    assert "Give a version" in (await harness.reply(admin)).text
    admin.send_text("/models")
    models = (await harness.reply(admin)).text
    assert models.index("v2") < models.index("v1") and "0.720 · 20" in models
    assert "ACTIVE" in models.splitlines()[0] and "ACTIVE" not in models.splitlines()[1]
    admin.send_text("/stats")
    stats = (await harness.reply(admin)).text
    assert "telegram/train: negative 0, happy 2, surprised 0, neutral 1" in stats
    assert "Prediction queue: 0" in stats and "v2 · seed_cnn · bal.acc 0.720" in stats


async def training_runs(harness: BotHarness) -> list[TrainingRun]:
    async with harness.storage.sessions() as session:
        return list(await session.scalars(select(TrainingRun)))


async def test_retrain_queues_one_run_and_refuses_a_second(harness: BotHarness) -> None:
    admin = harness.user(ADMIN, "Admin", "en")
    for bad, answer in (
        ("epochs=many", "whole number from 1 to 500"),
        ("colour=blue", "not understood"),
        ("arch=resnet", "no arch “resnet”"),
        ("epochs=0", "must be 1 to 500, not 0"),
        ("epochs=-1", "must be 1 to 500, not -1"),
        ("balance=99999999999999999999", "must be 0 to 1000000"),
    ):
        admin.send_text(f"/retrain {bad}")
        assert answer in (await harness.reply(admin, text_has("For example"))).text
    await import_archive(FIXTURE_ARCHIVE, harness.storage.sessions, harness.storage.blobs)
    admin.send_text("/retrain epochs=3 arch=seed_cnn")
    queued = await harness.reply(admin, text_has("queued"))
    assert "(seed_cnn, 3 epochs)" in queued.text and "if it beats" in queued.text
    # Committed just after the message is sent (it records the message's id).
    async with asyncio.timeout(5):
        while not (runs := await training_runs(harness)) or runs[0].progress_message_id is None:  # noqa: ASYNC110 - a table
            await asyncio.sleep(0.05)
    [run] = runs  # the bad ones queued nothing
    assert (run.status, run.requested_by, run.chat_id) == ("queued", ADMIN, ADMIN)
    assert run.progress_message_id == queued.message_id
    assert run.params == {
        "arch": "seed_cnn",
        "epochs": 3,
        "balance": 0,
        "promote": True,
        "batch_size": 64,
        "warm": True,
    }
    admin.send_text("/retrain promote=no")
    assert f"already on (#{run.id}, queued)" in (await harness.reply(admin)).text
    assert len(await training_runs(harness)) == 1


async def test_export_small_is_sent_as_a_document(harness: BotHarness) -> None:
    await contribute_directly(harness, 51, 2)
    admin = harness.user(ADMIN, "Admin", "en")
    admin.send_text("/export")
    progress = await harness.reply(admin, text_has("Building"))
    done = await harness.reply(admin, text_has("Archive ready: 2 images"))
    assert done.message_id == progress.message_id  # the same message, edited
    document = await harness.reply(admin, lambda c: c.method == "sendDocument")
    with zipfile.ZipFile(io.BytesIO(document.files["document"])) as archive:
        names = archive.namelist()
    assert len([n for n in names if n.startswith("train/")]) == 2 and "manifest.csv" in names


async def test_the_bot_answers_while_an_export_is_built(
    harness: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/export is a background job: the admin's next command is answered before the archive
    is done (the handler once held the admin's updates, and a connection, for the export)."""
    from bot.services.admin import export as service

    await contribute_directly(harness, 55, 2)
    release = asyncio.Event()
    real = service.export_dataset

    async def slow(*args: object, **kwargs: object) -> object:
        await release.wait()
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(service, "export_dataset", slow)
    admin = harness.user(ADMIN, "Admin", "en")
    admin.send_text("/export")
    await harness.reply(admin, text_has("Building"))
    admin.send_text("/help")
    await harness.reply(admin, text_has("What I can do"))
    assert not [c for c in harness.emulator.calls_in(ADMIN, after=0) if c.method == "sendDocument"]
    release.set()
    await harness.reply(admin, lambda c: c.method == "sendDocument", 30)


@pytest.fixture
async def small_limit_harness(storage: Storage, settings: Settings) -> AsyncIterator[BotHarness]:
    async with running_harness(
        storage, settings.model_copy(update={"export_document_bytes": 100})
    ) as harness:
        yield harness


async def test_export_too_big_for_a_document_gives_a_url(small_limit_harness: BotHarness) -> None:
    harness = small_limit_harness
    await contribute_directly(harness, 52, 3)
    admin = harness.user(ADMIN, "Admin", "en")
    admin.send_text("/export")
    answer = await harness.reply(admin, text_has("download it here"))
    url = answer.text.split("\n", 1)[1]
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        body = await response.read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert len([n for n in archive.namelist() if n.startswith("train/")]) == 3
    assert [c for c in harness.emulator.calls_in(ADMIN) if c.method == "sendDocument"] == []


async def test_export_too_big_where_the_store_gives_no_links_names_its_key(
    storage: Storage, settings: Settings, local_store: LocalBlobStore
) -> None:
    # FER2013 imported makes a 67 MB archive: over the document limit, and a local store
    # (`make run`) has no download links. That answer once raised TypeError (a placeholder
    # named `key`, which t() takes itself).
    local = Storage(storage.engine, storage.sessions, local_store)
    config = settings.model_copy(update={"export_document_bytes": 100})
    async with running_harness(local, config) as harness:
        await contribute_directly(harness, 53, 2)
        admin = harness.user(ADMIN, "Admin", "en")
        admin.send_text("/export")
        answer = await harness.reply(admin, text_has("no download links"))
        await asyncio.sleep(0.5)  # an error would follow at once
    [key] = await local_store.list("exports/")
    assert key in answer.text
    assert not [c for c in harness.emulator.calls_in(ADMIN) if "Sorry" in (c.text or "")]


async def test_an_export_whose_link_cannot_be_sent_leaves_no_archive(
    small_limit_harness: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = small_limit_harness
    await contribute_directly(harness, 54, 2)

    async def no_url(key: str, expires_s: int = 3600) -> str:
        raise RuntimeError("the store is down")

    monkeypatch.setattr(harness.storage.blobs, "url", no_url)
    admin = harness.user(ADMIN, "Admin", "en")
    admin.send_text("/export")
    await harness.reply(admin, text_has("Sorry"))
    assert await harness.storage.blobs.list("exports/") == []
    assert not list((harness.settings.data_dir / "exports").iterdir())


def manifest_of(document: bytes) -> list[dict[str, str]]:
    with zipfile.ZipFile(io.BytesIO(document)) as archive:
        return list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))


async def test_exports_are_pseudonymous_unless_raw_ids_are_asked_for(
    harness: BotHarness,
) -> None:
    await contribute_directly(harness, 67, 2)
    admin = harness.user(ADMIN, "Admin", "en")
    admin.send_text("/export")
    done = await harness.reply(admin, text_has("Archive ready"))
    assert "Contributors in manifest.csv are pseudonyms" in done.text
    document = await harness.reply(admin, lambda c: c.method == "sendDocument")
    rows = manifest_of(document.files["document"])
    assert "contributor_id" not in rows[0] and len({r["contributor_key"] for r in rows}) == 1
    assert len(rows[0]["contributor_key"]) == 16  # a keyed hash, not the id

    admin.send_text("/export ids=raw")
    assert "Telegram ids" in (await harness.reply(admin, text_has("Archive ready"))).text
    document = await harness.reply(admin, lambda c: c.method == "sendDocument")
    assert [r["contributor_id"] for r in manifest_of(document.files["document"])] == ["67"] * 2

    admin.send_text("/export ids=everything")
    assert "For example: /export or /export ids=raw" in (await harness.reply(admin)).text


async def test_retrain_and_stats_on_an_empty_dataset_say_how_to_load_fer2013(
    harness: BotHarness,
) -> None:
    await contribute_directly(harness, 53, 3)  # three contributed photos, no test split
    admin = harness.user(ADMIN, "Админ", "ru")
    admin.send_text("/retrain epochs=1")
    refusal = (await harness.reply(admin)).text
    assert "Обучение не запущено" in refusal and "тестовых изображений" in refusal
    assert "emobot import-fer2013" in refusal and "FER2013_ZIP" in refusal
    assert "kaggle.com" in refusal
    admin.send_text("/stats")
    stats = (await harness.reply(admin)).text
    assert "изображений для обучения по классам (нужно не меньше 2)" in stats
    assert "emobot import-fer2013" in stats
    assert await training_runs(harness) == []  # nothing was queued

    # Contributions alone, even plenty: still FER-less, /stats says so.
    async with harness.storage.sessions() as session:
        await session.execute(delete(Sample))
        await session.commit()
    english = harness.user(ADMIN, "Admin", "en")
    english.send_text("/stats")
    empty = (await harness.reply(english)).text
    assert "The dataset is empty." in empty and "emobot import-fer2013" in empty


def on_protocol(ferplus: float, real: float, test_4: float = 0.75) -> dict[str, object]:
    return {
        "test_4": {"n": 7178, "balanced_accuracy": test_4, "accuracy": 0.7},
        "ferplus_test": {"n": 6917, "balanced_accuracy": ferplus},
        "realphotos": {"n": 851, "balanced_accuracy": real},
    }


async def test_promote_shows_both_numbers_and_asks_when_worse_or_not_comparable(
    harness: BotHarness,
) -> None:
    async with harness.storage.sessions.begin() as session:
        for metrics in (
            on_protocol(0.82, 0.72),  # v1, active
            on_protocol(0.80, 0.70, test_4=0.80),  # v2: worse where it counts, not on test-4
            {"balanced_accuracy": 0.61, "compared_with": {"version": 1, "balanced_accuracy": 0.55}},
            {},  # v4: nothing to compare
        ):
            await register_model(session, blob_key="models/x", arch="emonet", metrics=metrics)
        await promote(session, 1)
    admin = harness.user(ADMIN, "Admin", "en")

    admin.send_text("/promote 2")
    ask = await harness.reply(admin)
    basis = "Mean balanced accuracy on ferplus-test, real photos"
    assert f"{basis}: v2 0.750, the active v1 0.770" in ask.text
    assert "worse" in ask.text and len(ask.buttons) == 2
    admin.press(ask, text="No, keep v1")
    assert "Kept v1 active" in (await harness.reply(admin, text_has("Kept"))).text
    assert (await active_version(harness)) == 1
    admin.send_text("/promote v2")
    ask = await harness.reply(admin)
    admin.press(ask, text="Yes, make v2 active")
    assert "v2 is active" in (await harness.reply(admin, text_has("active now"))).text
    assert (await active_version(harness)) == 2

    # v3 was measured beside v1 by its own run, not beside v2: not comparable, asked.
    admin.send_text("/promote 3")
    ask = await harness.reply(admin)
    assert "not measured on the same test split" in ask.text
    # Meanwhile another admin action makes v1 active: the old question is not acted on.
    async with harness.storage.sessions.begin() as session:
        await promote(session, 1)
    admin.press(ask, text="Yes, make v3 active")
    assert "changed meanwhile" in (await harness.reply(admin, text_has("changed"))).text
    assert (await active_version(harness)) == 1
    # Beside v1 it is better on its run's split: promoted at once, the numbers shown.
    admin.send_text("/promote 3")
    done = (await harness.reply(admin)).text
    assert "v3 0.610, the active v1 0.550" in done and "v3 is active now" in done

    admin.send_text("/promote 4")
    assert "cannot be compared" in (await harness.reply(admin)).text
    admin.send_text("/promote 3")
    assert "already" in (await harness.reply(admin)).text


@pytest.mark.parametrize(
    "argument", ["99999999999999999999", "-1", "0", "abc", "2.5", "", "١٢", "v"]
)
async def test_promote_argument_is_checked(harness: BotHarness, argument: str) -> None:
    admin = harness.user(ADMIN, "Админ", "ru")
    admin.send_text(f"/promote {argument}".strip())
    assert "Укажите номер версии" in (await harness.reply(admin)).text


async def active_version(harness: BotHarness) -> int | None:
    async with harness.storage.sessions() as session:
        model = await active_model(session)
    return model.version if model else None
