"""Webhook mode: `run_bot` registers its URL with the (fake) Bot API and answers the updates
Telegram would POST to it; a request without the secret token is refused."""

import asyncio

import aiohttp
import pytest
from pydantic import SecretStr

from bot.app import WEBHOOK_PATH, run_bot
from db.engine import Storage
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer
from tests.bot.conftest import text_has
from tests.conftest import free_port

SECRET = "s3cret-token_1"


async def test_updates_posted_to_the_webhook_are_answered(
    storage: Storage, settings: Settings, botapi: tuple[BotAPIEmulator, BotAPIServer]
) -> None:
    emulator, server = botapi
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    config = settings.model_copy(
        update={
            "telegram_api_url": server.url,
            "webhook_url": public,
            "webhook_port": port,
            "webhook_secret": SecretStr(SECRET),
        }
    )
    bot_task = asyncio.create_task(run_bot(config))
    try:
        async with asyncio.timeout(15):
            while emulator.webhook is None:  # noqa: ASYNC110 - set by the fake API's handler
                await asyncio.sleep(0.05)
        assert emulator.webhook["url"] == public + WEBHOOK_PATH
        assert emulator.webhook["secret_token"] == SECRET

        user = emulator.user(77, "Web", language_code="en")
        user.send_text("/help")
        update = emulator.updates.pop()  # delivered by us, as Telegram would, not by polling
        async with aiohttp.ClientSession() as http:
            url = public + WEBHOOK_PATH
            async with http.post(url, json=update) as response:
                assert response.status == 401  # no secret token
            headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            async with http.post(url, json=update, headers=headers) as response:
                assert response.status == 200
        answer = await emulator.wait_for(user.id, text_has("/predict"), 15)
        assert answer.method == "sendMessage"
        assert len([c for c in emulator.calls_in(user.id) if c.is_message]) == 1
    finally:
        bot_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await bot_task
