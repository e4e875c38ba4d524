"""/start, /help, /cancel, /language, command menus, unknown input, robustness."""

import asyncio

import pytest
from aiogram import F, Router
from aiogram.exceptions import TelegramRetryAfter
from aiogram.types import Message
from sqlalchemy import func, select

from bot.app import build_bot
from db.models import SeenUpdate
from tests.bot.conftest import ADMIN, BotHarness, text_has


async def test_menus_admins_see_admin_commands(harness: BotHarness) -> None:
    harness.user(ADMIN, "Admin", "en")  # the admin has opened the bot: Telegram knows the chat
    await harness.restart()
    commands = harness.emulator.commands
    user_menu = [c["command"] for c in commands["default"]]
    admin_menu = [c["command"] for c in commands[f"chat:{ADMIN}"]]
    assert "contribute" in user_menu and "stats" not in user_menu
    assert {"stats", "export", "retrain", "models", "promote"} <= set(admin_menu)
    assert commands["default/en"][0]["description"] != commands["default"][0]["description"]


async def test_an_admin_who_never_opened_the_bot_does_not_stop_start_up(
    harness: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    # The harness started before any admin wrote: Telegram answered "chat not found".
    assert f"chat:{ADMIN}" not in harness.emulator.commands
    assert "default/en" in harness.emulator.commands  # the menus after the refusal were set
    assert any("chat not found" in r.getMessage() for r in caplog.get_records("setup"))
    user = harness.user(4, "Ann", "en")
    user.send_text("/help")
    assert "What I can do" in (await harness.reply(user)).text


async def test_start_and_help_in_the_users_language(harness: BotHarness) -> None:
    ru = harness.user(1, "Иван", "ru")
    en = harness.user(2, "John", "en")
    other = harness.user(3, "Hans", "de")
    ru.send_text("/start")
    en.send_text("/start")
    other.send_text("/help")
    start_ru = await harness.reply(ru)
    assert "эмоции" in start_ru.text and "/contribute" in start_ru.text
    assert "/stats" not in start_ru.text
    assert "emotions" in (await harness.reply(en)).text
    assert "Что я умею" in (await harness.reply(other)).text  # unsupported: Russian
    admin = harness.user(ADMIN, "Admin", "en")
    admin.send_text("/help")
    assert "/stats" in (await harness.reply(admin)).text


async def test_language_choice_sticks(harness: BotHarness) -> None:
    user = harness.user(5, "Ann", "ru")
    user.send_text("/language")
    menu = await harness.reply(user)
    user.press(menu, text="English")
    assert "English" in (await harness.reply(user, text_has("English"))).text
    user.send_text("/help")
    assert "What I can do" in (await harness.reply(user)).text


async def test_cancel_without_dialog_and_unknown_input(harness: BotHarness) -> None:
    user = harness.user(6, "Ann", "en")
    user.send_text("/cancel")
    assert "Nothing to cancel" in (await harness.reply(user)).text
    user.send_text("/frobnicate")
    assert "don't know that command" in (await harness.reply(user)).text
    user.send_text("hello there")
    assert "Send a photo" in (await harness.reply(user)).text
    user.send_sticker()
    assert "Send a photo" in (await harness.reply(user)).text


async def test_non_admins_get_unknown_command_for_admin_commands(harness: BotHarness) -> None:
    user = harness.user(7, "Eve", "en")
    answers = []
    for command in ("/stats", "/export", "/retrain", "/models", "/promote 1", "/frobnicate"):
        user.send_text(command)
        answers.append((await harness.reply(user)).text)
    assert len(set(answers)) == 1 and "don't know" in answers[0]


async def test_duplicate_update_is_handled_once(harness: BotHarness) -> None:
    user = harness.user(8, "Ann", "en")
    user.send_text("/help")
    update = harness.emulator.pushed[-1]
    harness.emulator.push_update(update, chat_id=user.id)  # the same update_id again
    assert [u["update_id"] for u in harness.emulator.pushed[-2:]] == [update["update_id"]] * 2
    calls = await harness.emulator.collect(user.id, 1.5)
    assert [c.method for c in calls if c.is_message] == ["sendMessage"]


async def test_flood_gets_one_warning_and_service_resumes(
    storage,
    settings,
) -> None:
    from playground.botapi import BotAPIEmulator, BotAPIServer
    from tests.bot.conftest import BotHarness as Harness

    emulator = BotAPIEmulator()
    async with BotAPIServer(emulator) as server:
        harness = Harness(
            emulator, server, storage, settings, throttle_limit=3, throttle_window=1.0
        )
        await harness.start()
        try:
            user = harness.user(9, "Flood", "en")
            for i in range(8):
                user.send_text(f"spam {i}")
            calls = await emulator.collect(user.id, 1.0)
            texts = [c.text for c in calls if c.is_message]
            assert texts.count(texts[0]) == 3 and "Send a photo" in texts[0]
            assert sum("Too many messages" in t for t in texts) == 1
            assert len(texts) == 4
            # Dropped before the database middleware: only the 3 handled updates were taken.
            async with storage.sessions() as session:
                taken = await session.scalar(select(func.count()).select_from(SeenUpdate))
            assert taken == 3
            await asyncio.sleep(1.1)  # the window passes
            user.send_text("/help")
            assert "What I can do" in (await harness.reply(user)).text
        finally:
            await harness.stop()


async def test_flood_control_retry_after_is_honoured(harness: BotHarness) -> None:
    user = harness.user(10, "Ann", "en")
    harness.emulator.fail_next("sendMessage", retry_after=1)
    user.send_text("/help")
    reply = await harness.reply(user, seconds=10)
    assert "What I can do" in reply.text


async def test_a_flood_wait_longer_than_the_setting_is_given_up(harness: BotHarness) -> None:
    """One rule for the bot and the worker: FLOOD_WAIT_MAX_SECONDS."""
    user = harness.user(11, "Bea", "en")
    bot = build_bot(harness.settings.model_copy(update={"flood_wait_max_seconds": 1}))
    try:
        harness.emulator.fail_next("sendMessage", retry_after=2)
        with pytest.raises(TelegramRetryAfter):
            await bot.send_message(user.id, "not sent again")
        harness.emulator.fail_next("sendMessage", retry_after=1)
        await bot.send_message(user.id, "sent again")
    finally:
        await bot.session.close()
    sent = [c.text for c in harness.emulator.calls_in(user.id, after=0) if c.is_message]
    assert sent == ["sent again"]


async def test_errors_are_logged_and_apologised_for(
    harness: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    await harness.stop()
    broken = Router(name="broken")

    @broken.message(F.text == "/boom")
    async def boom(message: Message) -> None:
        raise RuntimeError("handler failed")

    # Ahead of the fallback: the test router is included first via a fresh dispatcher.
    harness.emulator.commands.clear()
    await harness.start(broken)
    user = harness.user(11, "Ann", "en")
    user.send_text("/boom")
    apology = await harness.reply(user)
    assert apology.text.startswith("Sorry, something went wrong")
    assert "Traceback" not in apology.text and "handler failed" not in apology.text
    assert any("failed" in r.getMessage() and r.exc_info for r in caplog.records)
    user.send_text("/help")
    assert "What I can do" in (await harness.reply(user)).text
