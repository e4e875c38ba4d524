"""Webhook mode: `run_bot` registers its URL with the (fake) Bot API and answers the updates
Telegram would POST to it; a request without the secret token is refused, and without a secret
the bot does not start at all."""

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr, ValidationError

from bot.app import WEBHOOK_PATH, build_dispatcher, run_bot
from db.engine import Storage
from emobot.settings import Settings, SettingsError, get_settings
from playground.botapi import BotAPIEmulator, BotAPIServer
from runtime.telegram import ConfigurationError
from tests.bot.conftest import text_has
from tests.conftest import child_env, free_port

SECRET = "s3cret-token_1"


async def test_updates_posted_to_the_webhook_are_answered(
    storage: Storage, settings: Settings, botapi: tuple[BotAPIEmulator, BotAPIServer]
) -> None:
    emulator, server = botapi
    port = free_port()
    # Bound to WEBHOOK_HOST only: 127.0.0.2 is loopback too, and 127.0.0.1 is then refused.
    public = f"http://127.0.0.2:{port}"
    config = settings.model_copy(
        update={
            "telegram_api_url": server.url,
            "webhook_url": public,
            "webhook_host": "127.0.0.2",
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
        # Telegram sends only the update types the dispatcher handles.
        handled = build_dispatcher(storage, config).resolve_used_update_types()
        assert sorted(emulator.webhook["allowed_updates"]) == sorted(handled)
        assert "message" in handled and "edited_channel_post" not in handled

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
            with pytest.raises(aiohttp.ClientConnectionError):
                elsewhere = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
                await http.post(elsewhere, json=update, headers=headers)
        answer = await emulator.wait_for(user.id, text_has("/predict"), 15)
        assert answer.method == "sendMessage"
        assert len([c for c in emulator.calls_in(user.id) if c.is_message]) == 1
    finally:
        bot_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await bot_task


async def test_webhook_mode_without_a_secret_does_not_start(
    settings: Settings, botapi: tuple[BotAPIEmulator, BotAPIServer]
) -> None:
    emulator, server = botapi
    config = settings.model_copy(
        update={"telegram_api_url": server.url, "webhook_url": "https://bot.example.org"}
    )
    with pytest.raises(ConfigurationError, match="WEBHOOK_SECRET"):
        await run_bot(config)  # at once: a SystemExit, not caught inside a task
    assert emulator.webhook is None


def test_settings_refuse_a_webhook_without_a_valid_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_SECRET"):
        Settings(_env_file=None, webhook_url="https://bot.example.org")
    with pytest.raises(ValidationError, match="webhook_secret"):  # Telegram's characters only
        Settings(_env_file=None, webhook_url="https://x.org", webhook_secret="with spaces")
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.org")
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError, match="WEBHOOK_SECRET must be set"):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_the_bot_command_refuses_a_webhook_without_a_secret(
    settings: Settings, tmp_path: Path
) -> None:
    env = child_env(
        settings,
        WEBHOOK_URL="https://bot.example.org",
        TELEGRAM_API_URL="http://x",
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    env.pop("WEBHOOK_SECRET", None)
    result = subprocess.run(
        [sys.executable, "-m", "cli", "bot"],
        env=env,
        cwd=tmp_path,  # no .env there
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "WEBHOOK_SECRET must be set" in result.stdout + result.stderr
