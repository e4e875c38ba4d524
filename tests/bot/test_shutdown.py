"""SIGTERM to a real bot process (`python -m cli bot`) while it handles an update, as every
Kubernetes rollout sends it: the update in hand is answered, then the process exits 0. The fake
Bot API holds the photo's download, so the handler is in flight when the signal comes."""

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
from sqlalchemy import select

from bot.app import WEBHOOK_PATH
from db.engine import Storage
from db.models import PredictionRequest
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer
from tests.bot.conftest import text_has
from tests.conftest import child_env, free_port

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "tests" / "data" / "faces" / "astronaut.jpg"
SECRET = "shutdown-secret"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}


class BotProcess:
    """`python -m cli bot`, its output in a file (a pipe nobody reads could fill up)."""

    def __init__(self, settings: Settings, log: Path, **env: str) -> None:
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli", "bot"],
                env=child_env(settings, **env),
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text()[-4000:]

    def alive(self) -> None:
        assert self.process.poll() is None, self.output()

    async def exit_code(self, seconds: float) -> int:
        """Waits without blocking the event loop: the fake Bot API runs in it."""
        async with asyncio.timeout(seconds):
            while (code := self.process.poll()) is None:  # noqa: ASYNC110 - no event to wait on
                await asyncio.sleep(0.05)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


async def _until(condition: object, process: BotProcess, seconds: float) -> None:
    assert callable(condition)
    async with asyncio.timeout(seconds):
        while not condition():
            process.alive()
            await asyncio.sleep(0.05)


async def _request_count(storage: Storage, chat_id: int) -> int:
    async with storage.sessions() as session:
        rows = await session.scalars(
            select(PredictionRequest).where(PredictionRequest.chat_id == chat_id)
        )
        return len(rows.all())


async def test_sigterm_while_polling_answers_the_update_in_hand_and_exits_0(
    settings: Settings,
    storage: Storage,
    botapi: tuple[BotAPIEmulator, BotAPIServer],
    tmp_path: Path,
) -> None:
    emulator, server = botapi
    bot = BotProcess(settings, tmp_path / "bot.log", TELEGRAM_API_URL=server.url)
    try:
        await _until(lambda: emulator.polled, bot, 60)
        user = emulator.user(601, "Stop", language_code="en")
        emulator.hold_downloads()
        user.send_photo(PHOTO.read_bytes())
        await _until(lambda: emulator.held_downloads == 1, bot, 30)

        bot.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.5)  # stopping: a bot that did not wait would be gone by now
        bot.alive()
        emulator.release_downloads()

        await emulator.wait_for(user.id, text_has("working on it"), 20)
        assert await bot.exit_code(30) == 0, bot.output()
        assert await _request_count(storage, user.id) == 1
        assert "finishing 1 updates in hand" in bot.output()
    finally:
        emulator.release_downloads()
        bot.kill()


async def test_sigterm_in_webhook_mode_answers_the_request_in_hand_refuses_new_ones_and_exits_0(
    settings: Settings,
    storage: Storage,
    botapi: tuple[BotAPIEmulator, BotAPIServer],
    tmp_path: Path,
) -> None:
    emulator, server = botapi
    port = free_port()
    url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    bot = BotProcess(
        settings,
        tmp_path / "bot.log",
        TELEGRAM_API_URL=server.url,
        BOT_TOKEN="42:shutdown",
        WEBHOOK_URL=f"http://127.0.0.1:{port}",
        WEBHOOK_HOST="127.0.0.1",
        WEBHOOK_PORT=str(port),
        WEBHOOK_SECRET=SECRET,
    )
    # A connection per request: a kept-alive one would outlive the listening socket.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        try:
            await _until(lambda: emulator.webhook is not None, bot, 60)
            assert emulator.webhook is not None
            # Only the update types the dispatcher handles.
            assert "message" in emulator.webhook["allowed_updates"]
            assert "callback_query" in emulator.webhook["allowed_updates"]
            assert "inline_query" not in emulator.webhook["allowed_updates"]

            user = emulator.user(602, "Hook", language_code="en")
            emulator.hold_downloads()
            user.send_photo(PHOTO.read_bytes())
            update = emulator.updates.pop()  # delivered by us, as Telegram would

            async def deliver() -> int:
                async with http.post(url, json=update, headers=HEADERS) as response:
                    return response.status

            delivery = asyncio.create_task(deliver())
            await _until(lambda: emulator.held_downloads == 1, bot, 30)
            # Telegram has no answer yet: it is given once the update was handled.
            await asyncio.sleep(0.5)
            assert not delivery.done()

            bot.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(1.5)
            bot.alive()
            # No new request is taken (the port is closed): Telegram sends it to another
            # replica. Asked without the secret, so that a request still taken is refused.
            async with asyncio.timeout(10):
                while True:
                    try:
                        async with http.post(url, json={"update_id": 1}) as response:
                            assert response.status == 401
                    except aiohttp.ClientConnectionError:
                        break
                    await asyncio.sleep(0.1)
            bot.alive()
            emulator.release_downloads()

            assert await asyncio.wait_for(delivery, 20) == 200
            await emulator.wait_for(user.id, text_has("working on it"), 20)
            assert await bot.exit_code(30) == 0, bot.output()
            assert await _request_count(storage, user.id) == 1
        finally:
            emulator.release_downloads()
            bot.kill()
