"""A second `make run`: a fresh playground Bot API in front of the same database."""

from pathlib import Path

from db.engine import Storage
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer
from tests.bot.conftest import BotHarness


async def test_the_bot_answers_after_the_playground_restarts(
    storage: Storage, settings: Settings, tmp_path: Path
) -> None:
    # The bot skips update ids it has seen (for two days): a playground that numbered its
    # updates from 1 again would be ignored after a restart. It keeps its counter instead.
    state = tmp_path / "playground" / "botapi.json"
    seen: list[int] = []
    for _ in range(2):
        emulator = BotAPIEmulator(state_file=state)
        async with BotAPIServer(emulator) as server:
            harness = BotHarness(emulator, server, storage, settings)
            await harness.start()
            try:
                user = harness.user(4242, "Ann", language_code="en")
                user.send_text("/help")
                seen.append(emulator.pushed[-1]["update_id"])
                await harness.reply(user)
            finally:
                await harness.stop()
    assert seen[1] > seen[0]
