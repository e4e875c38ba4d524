"""/privacy, consent (recorded with its version, withdrawn), /forget and pseudonymous exports,
through the real Dispatcher and the fake Bot API."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.services.privacy import CONSENT_VERSION
from db.blobs import BlobStore, content_key, sha256_hex
from db.engine import Storage
from db.models import FsmState, User
from emobot.settings import Settings
from playground.botapi import FakeUser
from tests.bot.conftest import BotHarness, Photos, running_harness, text_has
from tests.bot.test_contribute import accept, finish, open_batch
from tests.bot.test_predict_mine import contribute_directly
from tests.db.test_erasure import traces


@pytest.fixture
async def any_harness(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    blob_store: BlobStore,
) -> AsyncIterator[BotHarness]:
    """The bot over the local blob folder, then over moto's S3."""
    async with running_harness(Storage(engine, sessions, blob_store), settings) as harness:
        yield harness


async def user_row(harness: BotHarness, user_id: int) -> User | None:
    async with harness.storage.sessions() as session:
        return await session.get(User, user_id)


async def consented(harness: BotHarness, user_id: int, version: int = CONSENT_VERSION) -> User:
    """The user row once it records consent to `version`: a handler's session is committed
    just after its reply went out."""
    async with asyncio.timeout(5):
        while True:
            row = await user_row(harness, user_id)
            if row is not None and row.consent_version == version:
                return row
            await asyncio.sleep(0.02)


async def contribute(harness: BotHarness, user: FakeUser, photos: list[bytes]) -> None:
    await open_batch(harness, user)
    for count, photo in enumerate(photos, start=1):
        user.send_photo(photo)
        await accept(harness, user, count)
    assert f"Photos saved: {len(photos)}" in await finish(harness, user)


async def test_menus_start_and_consent_point_to_privacy(harness: BotHarness) -> None:
    menu = [c["command"] for c in harness.emulator.commands["default"]]
    assert {"privacy", "forget"} <= set(menu)
    user = harness.user(60, "Ann", "en")
    user.send_text("/start")
    assert "/privacy" in (await harness.reply(user)).text
    user.send_text("/contribute")
    consent = await harness.reply(user)
    assert "/privacy" in consent.text and "/forget" in consent.text


async def test_privacy_says_what_is_kept_and_the_users_consent(harness: BotHarness) -> None:
    user = harness.user(61, "Иван", "ru")
    user.send_text("/privacy")
    answer = await harness.reply(user)
    assert "удаляются сразу после ответа" in answer.text and "согласие: не дано" in answer.text
    assert "администраторы" in answer.text and "псевдоним" in answer.text
    assert [b["text"] for b in answer.buttons] == ["Удалить все мои данные"]  # nothing to withdraw

    user.send_text("/contribute")
    user.press(await harness.reply(user), data="consent:1")
    await harness.reply(user, text_has("Выберите класс"))
    user.send_text("/privacy")
    answer = await harness.reply(user)
    row = await user_row(harness, 61)
    assert row is not None and row.consent_at is not None
    given = f"дано {row.consent_at:%Y-%m-%d} (версия текста {CONSENT_VERSION})"
    assert given in answer.text
    assert [b["text"] for b in answer.buttons] == ["Отозвать согласие", "Удалить все мои данные"]


@pytest.fixture
async def retention_harness(storage: Storage, settings: Settings) -> AsyncIterator[BotHarness]:
    kept = settings.model_copy(update={"prediction_retention_hours": 6})
    async with running_harness(storage, kept) as harness:
        yield harness


async def test_privacy_gives_the_deployments_retention(retention_harness: BotHarness) -> None:
    user = retention_harness.user(62, "Ann", "en")
    user.send_text("/privacy")
    assert "kept 6 h after the answer" in (await retention_harness.reply(user)).text


async def test_consent_is_recorded_with_its_version_and_asked_again_for_a_new_one(
    harness: BotHarness,
) -> None:
    user = harness.user(63, "Ann", "en")
    user.send_text("/contribute")
    ask = await harness.reply(user)
    assert "has changed" not in ask.text
    user.press(ask, text="I agree")
    await harness.reply(user, text_has("Choose a class"))
    row = await consented(harness, 63)
    assert row.consent_at is not None
    user.send_text("/contribute")
    assert "Choose a class" in (await harness.reply(user)).text  # not asked twice

    # The user agreed to the text before this one.
    async with harness.storage.sessions.begin() as session:
        await session.execute(
            update(User).where(User.id == 63).values(consent_version=CONSENT_VERSION - 1)
        )
    user.send_text("/contribute")
    again = await harness.reply(user)
    assert again.text.startswith("The consent text has changed") and "Do you agree?" in again.text
    user.press(again, text="I agree")
    await harness.reply(user, text_has("Choose a class"))
    renewed = await consented(harness, 63)
    assert renewed.consent_at is not None and renewed.consent_at > row.consent_at


async def test_withdrawing_consent_offers_to_erase_the_contributions(
    harness: BotHarness, photos: Photos
) -> None:
    ann = harness.user(64, "Ann", "en")
    await contribute(harness, ann, photos.variants[:2])
    keys = sorted(s.blob_key for s in await harness.samples())
    await open_batch(harness, ann)  # a batch open while withdrawing: it is dropped
    ann.send_text("/privacy")
    ann.press(await harness.reply(ann), text="Withdraw consent")
    offer = await harness.reply(ann, text_has("Consent withdrawn"))
    assert "Your photos still in the dataset: 2. Erase them?" in offer.text
    row = await user_row(harness, 64)
    assert row is not None and (row.consent_at, row.consent_version) == (None, None)
    async with harness.storage.sessions() as session:
        assert list(await session.scalars(select(FsmState))) == []
    ann.press(offer, text="Yes, erase them")
    assert "Your photos erased: 2." in (await harness.reply(ann, text_has("erased"))).text
    assert await harness.samples() == []
    assert [await harness.storage.blobs.exists(k) for k in keys] == [False, False]
    ann.send_text("/contribute")
    assert "Do you agree?" in (await harness.reply(ann)).text  # asked again

    bob = harness.user(65, "Bob", "en")
    await contribute(harness, bob, photos.variants[2:3])
    bob.send_text("/privacy")
    bob.press(await harness.reply(bob), text="Withdraw consent")
    bob.press(await harness.reply(bob, text_has("Erase them?")), text="No, keep them")
    assert "the photos stay" in (await harness.reply(bob, text_has("stay"))).text
    assert [s.contributor_id for s in await harness.samples()] == [65]


async def test_forget_erases_everything_of_the_person_but_what_others_share(
    any_harness: BotHarness, photos: Photos, engine: AsyncEngine
) -> None:
    harness = any_harness
    person = harness.emulator.user(
        987_654_321, "Zeldaunique", language_code="en", username="zelda_unique"
    )
    other = harness.user(123_123_123, "Other", "en")
    mine, theirs = photos.variants[:2], photos.variants[2]
    await contribute(harness, person, mine)
    await contribute(harness, other, [theirs])
    # Each sends one of the other's contributed photos for a prediction (no worker runs: the
    # requests stay queued and need their photos); the person also sends one of their own.
    other.send_photo(mine[0])
    await harness.reply(other, text_has("working on it"))
    for photo in (theirs, photos.one_face):
        person.send_photo(photo)
        await harness.reply(person, text_has("working on it"))
    person.send_text("/contribute")  # and leaves a dialog open
    await harness.reply(person, text_has("Choose a class"))
    needles = ("987654321", "Zeldaunique", "zelda_unique")
    assert set(await traces(engine, *needles)) == {
        "users",
        "samples",
        "prediction_requests",
        "fsm_states",
    }

    person.send_text("/forget")
    ask = await harness.reply(person)
    assert "cannot be undone" in ask.text
    person.press(ask, text="Yes, erase everything")
    done = await harness.reply(person, text_has("Erased"))
    assert "photos for training: 2, recognition requests: 2, unfinished dialogs: 1" in done.text

    assert await traces(engine, *needles) == {}
    # The other person's sample, and the person's photo the other person sent: nothing else.
    keys = [content_key(sha256_hex(p)) for p in (mine[0], theirs)]
    assert await harness.storage.blobs.list() == sorted(keys)
    assert [s.contributor_id for s in await harness.samples()] == [123_123_123]
    assert await user_row(harness, 123_123_123) is not None


async def test_forget_can_be_declined_and_is_offered_in_privacy(harness: BotHarness) -> None:
    await contribute_directly(harness, 66, 2)
    user = harness.user(66, "Ann", "en")
    user.send_text("/forget")
    user.press(await harness.reply(user), text="No")
    assert "nothing was erased" in (await harness.reply(user, text_has("nothing"))).text
    assert len(await harness.samples()) == 2

    user.send_text("/privacy")
    user.press(await harness.reply(user), text="Erase all my data")
    ask = await harness.reply(user, text_has("cannot be undone"))
    user.press(ask, text="Yes, erase everything")
    assert "photos for training: 2" in (await harness.reply(user, text_has("Erased"))).text
    assert await harness.samples() == [] and await user_row(harness, 66) is None
