"""Senders and updates out of the ordinary: answered where a person wrote, ignored quietly
(no answer, nothing stored, no traceback in the logs) where nobody should be answered."""

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from db.models import User
from tests.bot.conftest import BotHarness, text_has

LONG = "Й" * 300  # Telegram allows 64 characters; a forged update may carry more


@dataclass(frozen=True)
class Case:
    send: Callable[[BotHarness], int]  # sends the update; the chat an answer would go to
    answered: bool


def long_names(harness: BotHarness) -> int:
    harness.emulator.user(3001, LONG, language_code="en", username="u" * 300).send_text("/start")
    return 3001


def huge_id(harness: BotHarness) -> int:
    harness.emulator.user(2**63, "Big", language_code="en").send_text("/start")
    return 2**63


def huge_negative_id(harness: BotHarness) -> int:
    harness.emulator.user(-(2**63) - 1, "Small", language_code="en").send_text("/start")
    return -(2**63) - 1


def bot_account(harness: BotHarness) -> int:
    harness.emulator.user(3002, "Robot", language_code="en", is_bot=True).send_text("/start")
    return 3002


def unknown_update_type(harness: BotHarness) -> int:
    # A type newer than this aiogram (or forged): an update with no field it knows.
    harness.emulator.push_update({"future_thing": {"id": 1, "from": {"id": 3003}}}, chat_id=3003)
    return 3003


CASES = {
    "first name and username of 300 characters": Case(long_names, answered=True),
    "user id 2^63": Case(huge_id, answered=False),
    "user id -2^63-1": Case(huge_negative_id, answered=False),
    "a bot account": Case(bot_account, answered=False),
    "an update type aiogram does not know": Case(unknown_update_type, answered=False),
}


@pytest.mark.parametrize("name", CASES)
async def test_odd_senders(
    harness: BotHarness, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    case = CASES[name]
    caplog.set_level(logging.INFO)
    chat = case.send(harness)
    if case.answered:
        assert "/contribute" in (await harness.reply(harness.emulator.users[chat])).text
    # Someone else is answered after it: the bot goes on.
    other = harness.user(3100, "Ann", "en")
    other.send_text("/help")
    await harness.reply(other, text_has("/contribute"))
    if not case.answered:
        assert harness.emulator.calls_in(chat, after=0) == []
    failures = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert failures == []
    async with harness.storage.sessions() as session:
        users = {u.id: u for u in await session.scalars(select(User))}
    assert (chat in users) == case.answered
    if case.answered:
        assert len(users[chat].first_name or "") <= 128
