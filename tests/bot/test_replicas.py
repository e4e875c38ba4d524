"""Two bot processes in webhook mode behind one URL, as Kubernetes runs several replicas: a
dialog started on one continues on the other (the FSM state is in PostgreSQL), and an update
delivered to both is handled once (its id is taken in PostgreSQL with what it wrote)."""

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from bot.app import WEBHOOK_PATH
from db.engine import Storage
from db.models import PredictionRequest, SeenUpdate
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer
from tests.bot.conftest import text_has
from tests.conftest import child_env, free_port

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "tests" / "data" / "faces" / "astronaut.jpg"
SECRET = "replica-secret"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}


class Replica:
    def __init__(self, settings: Settings, api_url: str) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        env = child_env(
            settings,
            BOT_TOKEN="42:replicas",
            TELEGRAM_API_URL=api_url,
            WEBHOOK_URL=f"http://127.0.0.1:{self.port}",
            WEBHOOK_PORT=str(self.port),
            WEBHOOK_SECRET=SECRET,
            METRICS_PORT=str(self.metrics_port),
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "bot"],
            env=env,
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    async def ready(self, http: aiohttp.ClientSession) -> None:
        """/readyz answers 200 and the webhook listens (it refuses a request without secret)."""
        async with asyncio.timeout(60):
            while True:
                assert self.process.poll() is None, self.process.communicate()[0][-3000:]
                try:
                    async with http.get(f"http://127.0.0.1:{self.metrics_port}/readyz") as r:
                        ready = r.status == 200
                    async with http.post(self.url, json={"update_id": 0}) as r:
                        if ready and r.status == 401:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.2)

    async def deliver(self, http: aiohttp.ClientSession, update: dict[str, object]) -> None:
        async with http.post(self.url, json=update, headers=HEADERS) as response:
            assert response.status == 200

    async def counter(self, http: aiohttp.ClientSession, name: str, **labels: str) -> float:
        async with http.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as response:
            body = await response.text()
        return sum(
            s.value
            for family in text_string_to_metric_families(body)
            for s in family.samples
            if s.name == name and labels.items() <= s.labels.items()
        )

    async def terminate(self) -> tuple[int, str]:
        """SIGTERM, as a rollout sends it; the exit code and the output. Waits without blocking
        the event loop, where the fake Bot API runs."""
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            while self.process.poll() is None:  # noqa: ASYNC110 - no event to wait on
                await asyncio.sleep(0.05)
        return self.process.returncode, self.process.communicate()[0]

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.communicate()[0]


@pytest.fixture
def replicas(
    settings: Settings, botapi: tuple[BotAPIEmulator, BotAPIServer]
) -> Iterator[tuple[Replica, Replica]]:
    pair = (Replica(settings, botapi[1].url), Replica(settings, botapi[1].url))
    yield pair
    for replica in pair:
        replica.stop()


async def test_two_bot_processes_share_dialogs_and_handle_a_duplicate_update_once(
    replicas: tuple[Replica, Replica],
    storage: Storage,
    botapi: tuple[BotAPIEmulator, BotAPIServer],
) -> None:
    emulator, _ = botapi
    a, b = replicas
    user = emulator.user(501, "Rep", language_code="en")
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(a.ready(http), b.ready(http))

        # /predict on one replica, a stray text on the other: still inside the dialog.
        user.send_text("/predict")
        await a.deliver(http, emulator.updates.pop())
        await emulator.wait_for(user.id, text_has("Send a photo"), 15)
        user.send_text("hello")
        await b.deliver(http, emulator.updates.pop())
        await emulator.wait_for(user.id, text_has("not a photo"), 15)

        # Telegram delivers the photo twice and each delivery reaches another replica.
        message = user.send_photo(PHOTO.read_bytes())
        update = emulator.updates.pop()
        await asyncio.gather(a.deliver(http, update), b.deliver(http, update))
        await emulator.wait_for(user.id, text_has("working on it"), 15)
        await asyncio.sleep(2)  # time for a second answer, if there were one
        received = [await r.counter(http, "emobot_bot_updates_total") for r in (a, b)]
        duplicates = [await r.counter(http, "emobot_bot_duplicate_updates_total") for r in (a, b)]
        refused = await b.counter(http, "emobot_bot_refusals_total", reason="not_photo")
        handled = await a.counter(http, "emobot_bot_update_duration_seconds_count", type="message")

    answers = [c.text for c in emulator.calls_in(user.id) if c.is_message]
    assert sum("working on it" in (text or "") for text in answers) == 1, answers
    async with storage.sessions() as session:
        requests = (
            await session.scalars(
                select(PredictionRequest).where(PredictionRequest.chat_id == user.id)
            )
        ).all()
        seen = await session.get(SeenUpdate, update["update_id"])
    assert [r.message_id for r in requests] == [message["message_id"]]
    assert seen is not None
    # Both replicas received it; one of them skipped it.
    assert received == [2, 2]
    assert sum(duplicates) == 1
    assert refused == 1 and handled == 2

    # Stopped as a rollout stops them: each finishes and exits 0.
    for replica in (a, b):
        code, out = await replica.terminate()
        assert code == 0, out[-3000:]
        assert "bot: stopped" in out
