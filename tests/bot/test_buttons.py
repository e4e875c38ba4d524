"""Every inline button, tapped twice quickly and tapped on a message deleted since: the person
never reads "Sorry, something went wrong", and an outcome that cannot be shown in place
arrives as a new message."""

import asyncio
import re
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import REGISTRY

from bot.services.privacy import CONSENT_VERSION
from db.registry import promote, register_model
from db.users import give_consent, upsert_user
from emobot.i18n import t
from playground.botapi import BotCall, FakeUser
from tests.bot.conftest import ADMIN, BotHarness, Photos, text_has
from tests.bot.test_contribute import open_batch
from tests.bot.test_predict_mine import contribute_directly

Setup = Callable[[BotHarness, FakeUser, Photos, int], Awaitable[BotCall]]


def edited(call: BotCall) -> bool:
    return call.method in ("editMessageText", "editMessageCaption", "editMessageMedia")


async def consent_ask(h: BotHarness, user: FakeUser, photos: Photos, round_: int) -> BotCall:
    user.send_text("/contribute")
    return await h.reply(user)


async def label_ask(h: BotHarness, user: FakeUser, photos: Photos, round_: int) -> BotCall:
    ask = await consent_ask(h, user, photos, round_)
    user.press(ask, data="consent:1")
    await h.reply(user, edited)
    return ask


async def done_offer(h: BotHarness, user: FakeUser, photos: Photos, round_: int) -> BotCall:
    await open_batch(h, user, "happy")
    user.send_photo(photos.variants[round_])  # round 1 must not meet round 0's saved photo
    return await h.reply(user, text_has("(1 "))


async def save_ask(h: BotHarness, user: FakeUser, photos: Photos, round_: int) -> BotCall:
    offer = await done_offer(h, user, photos, round_)
    user.press(offer, data="batch:done")
    return await h.reply(user, lambda c: c.is_message and len(c.buttons) == 2)


async def languages(h: BotHarness, user: FakeUser, photos: Photos, round_: int) -> BotCall:
    user.send_text("/language")
    return await h.reply(user)


async def mine_page(h: BotHarness, user: FakeUser, photos: Photos, round_: int) -> BotCall:
    await contribute_directly(h, user.id, 7)  # two pages
    user.send_text("/mine")
    return await h.reply(user)


async def delete_all_ask(h: BotHarness, user: FakeUser, photos: Photos, round_: int) -> BotCall:
    page = await mine_page(h, user, photos, round_)
    user.press(page, data=button_data(page, h, "mine:delete_all:0:0"))
    await h.reply(user, edited)
    return page


async def consented(h: BotHarness, user: FakeUser, photos_count: int) -> None:
    await contribute_directly(h, user.id, photos_count)
    async with h.storage.sessions.begin() as session:
        await upsert_user(session, user.id, username=None, first_name="x", telegram_language="en")
        await give_consent(session, user.id, CONSENT_VERSION)


async def privacy_page(h: BotHarness, user: FakeUser, photos: Photos, round_: int) -> BotCall:
    await consented(h, user, 2)
    user.send_text("/privacy")
    return await h.reply(user)


async def erase_ask(h: BotHarness, user: FakeUser, photos: Photos, round_: int) -> BotCall:
    page = await privacy_page(h, user, photos, round_)
    user.press(page, data="privacy:withdraw")
    await h.reply(user, edited)
    return page


async def forget_ask(h: BotHarness, user: FakeUser, photos: Photos, round_: int) -> BotCall:
    user.send_text("/forget")
    return await h.reply(user)


async def promote_ask(h: BotHarness, user: FakeUser, photos: Photos, round_: int) -> BotCall:
    """v3 active and better; promoting v1 (then v2) asks first."""
    async with h.storage.sessions.begin() as session:
        if round_ == 0:
            for balanced in (0.5, 0.6, 0.7):
                await register_model(
                    session,
                    blob_key="models/x",
                    arch="seed_cnn",
                    metrics={"test_4": {"balanced_accuracy": balanced, "accuracy": 0.7}},
                )
        await promote(session, 3)
    user.send_text(f"/promote {1 + round_}")
    return await h.reply(user, lambda c: c.is_message and bool(c.buttons))


# (setup, the button's callback data: a regular expression)
BUTTONS: dict[str, tuple[Setup, str]] = {
    "consent yes": (consent_ask, "consent:1"),
    "consent no": (consent_ask, "consent:0"),
    "class": (label_ask, "label:happy"),
    "done": (done_offer, "batch:done"),
    "save": (save_ask, "batch:save"),
    "discard": (save_ask, "batch:discard"),
    "language": (languages, "lang:en"),
    "mine next page": (mine_page, "mine:page:1:0"),
    "mine delete one": (mine_page, r"mine:delete:0:\d+"),
    "mine delete all": (mine_page, "mine:delete_all:0:0"),
    "mine delete all yes": (delete_all_ask, "mine:delete_all_yes:0:0"),
    "mine delete all no": (delete_all_ask, "mine:delete_all_no:0:0"),
    "privacy withdraw": (privacy_page, "privacy:withdraw"),
    "privacy forget": (privacy_page, "privacy:forget"),
    "privacy erase": (erase_ask, "privacy:erase"),
    "privacy keep": (erase_ask, "privacy:keep"),
    "forget yes": (forget_ask, "privacy:forget_yes"),
    "forget no": (forget_ask, "privacy:forget_no"),
    "promote yes": (promote_ask, r"promote:\d:3:1"),
    "promote no": (promote_ask, r"promote:\d:3:0"),
}


def button_data(message: BotCall, harness: BotHarness, pattern: str) -> str:
    """The callback data of the message's current button that matches `pattern`."""
    current = harness.emulator.message(message.chat_id or 0, message.message_id or 0)
    for row in current.get("reply_markup", {}).get("inline_keyboard", []):
        for button in row:
            if re.fullmatch(pattern, button.get("callback_data", "")):
                return button["callback_data"]
    raise LookupError(f"no button {pattern!r} in {current.get('reply_markup')}")


async def settled(harness: BotHarness, user: FakeUser, after: int, taps: int) -> list[BotCall]:
    """What the bot did since `after`, once every tap was answered and the bot has been quiet
    in the chat for a while (the handlers answer the tap first, then edit or send)."""
    emulator = harness.emulator
    answered = after
    for _ in range(taps):
        answer = await emulator.wait_for(user.id, is_answer, after=answered)
        answered = answer.seq
    async with asyncio.timeout(15):
        seen = -1
        while seen != len(emulator.calls):
            seen = len(emulator.calls)
            await asyncio.sleep(0.5)
    return emulator.calls_in(user.id, after=after)


def is_answer(call: BotCall) -> bool:
    return call.method == "answerCallbackQuery"


def answers(calls: list[BotCall]) -> list[BotCall]:
    return [c for c in calls if is_answer(c)]


def errors() -> float:
    return REGISTRY.get_sample_value("emobot_bot_errors_total") or 0.0


def apologies(calls: list[BotCall]) -> list[BotCall]:
    sorry = {t(lang, "error") for lang in ("en", "ru")}
    return [c for c in calls if c.text in sorry]


@pytest.mark.parametrize("name", BUTTONS)
async def test_a_button_tapped_twice_or_on_a_deleted_message(
    harness: BotHarness, photos: Photos, name: str
) -> None:
    setup, pattern = BUTTONS[name]
    admin = name.startswith("promote")
    errors_before = errors()

    # Twice, quickly: both taps carry the message as it was before the first edit.
    user = harness.user(ADMIN if admin else 2000, "Ann", "en")
    message = await setup(harness, user, photos, 0)
    data = button_data(message, harness, pattern)
    mark = len(harness.emulator.calls)
    user.press(message, data=data)
    user.press(message, data=data)
    calls = await settled(harness, user, mark, 2)
    assert apologies(calls) == [], calls
    assert len(answers(calls)) == 2

    # On a message the person deleted right after tapping (or a forged one).
    user = harness.user(ADMIN if admin else 2001, "Bob", "en")
    message = await setup(harness, user, photos, 1)
    data = button_data(message, harness, pattern)
    mark = len(harness.emulator.calls)
    user.press(message, data=data)
    assert message.message_id is not None
    harness.emulator.delete_message(user.id, message.message_id)
    calls = await settled(harness, user, mark, 1)
    assert apologies(calls) == [], calls
    assert answers(calls)
    # The outcome is told in a new message.
    assert [c for c in calls if c.is_message], calls
    assert errors() == errors_before


async def test_a_forged_forget_on_a_missing_message_erases_and_says_so(
    harness: BotHarness,
) -> None:
    # Once: everything erased, then "Sorry, something went wrong" (the edit found no message).
    user = harness.user(2002, "Ann", "en")
    await contribute_directly(harness, user.id, 3)
    user.send_text("/forget")
    ask = await harness.reply(user)
    assert ask.message_id is not None
    user.press(ask, data="privacy:forget_yes")
    harness.emulator.delete_message(user.id, ask.message_id)
    done = await harness.reply(user, lambda c: c.method == "sendMessage")
    assert (done.text or "").startswith("Erased: photos for training: 3,")
    assert await harness.samples() == []
