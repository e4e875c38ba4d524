"""runtime.serving.serve, which runs the bot, the worker and the trainer: it waits for an
unreachable database instead of exiting, and a SIGTERM stops the service within the grace
period, cutting short one that does not stop by itself."""

import asyncio
import signal
from contextlib import AsyncExitStack

from db.engine import Storage
from emobot.settings import Settings
from runtime.botclient import BotClient
from runtime.serving import Build, Serving, serve
from runtime.telegram import make_client
from tests.trainer.test_service import DatabaseGate


class Recorder:
    """A service that notes what happened to it; `hang` ignores stop()."""

    def __init__(self, *, hang: bool) -> None:
        self.hang = hang
        self.started = asyncio.Event()
        self.stop_called = False
        self.cancelled = False
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        self.started.set()
        try:
            if self.hang:
                await asyncio.Event().wait()
            await self._stopping.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    def stop(self) -> None:
        self.stop_called = True
        self._stopping.set()


def _build(service: Recorder) -> Build[BotClient]:
    def build(storage: Storage, bot: BotClient | None, stack: AsyncExitStack) -> Serving:
        return Serving(service)

    return build


async def test_a_service_starts_once_the_database_answers_and_stops_on_sigterm(
    settings: Settings,
) -> None:
    gate = DatabaseGate(settings.database_url or "")
    config = settings.model_copy(update={"database_url": gate.url})
    service = Recorder(hang=False)
    serving = asyncio.create_task(
        serve(config, "test", _build(service), needs_bot=False, bot_factory=make_client)
    )
    try:
        await asyncio.sleep(2)
        assert not service.started.is_set() and not serving.done()  # waiting, not exited
        await gate.open()
        await asyncio.wait_for(service.started.wait(), 30)
        signal.raise_signal(signal.SIGTERM)
        await asyncio.wait_for(serving, 10)
    finally:
        await gate.close()
    assert service.stop_called and not service.cancelled


async def test_a_service_still_busy_after_the_grace_period_is_cut_short(
    settings: Settings,
) -> None:
    config = settings.model_copy(update={"shutdown_grace_seconds": 0.5})
    service = Recorder(hang=True)
    serving = asyncio.create_task(
        serve(config, "test", _build(service), needs_bot=False, bot_factory=make_client)
    )
    await asyncio.wait_for(service.started.wait(), 30)
    signal.raise_signal(signal.SIGTERM)
    await asyncio.wait_for(serving, 30)  # returns normally: the process would exit 0
    assert service.stop_called and service.cancelled
