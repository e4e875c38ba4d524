"""The worker process: its service, checks and metrics under runtime.serving."""

import asyncio
from contextlib import AsyncExitStack

from prometheus_client import REGISTRY

import runtime.serving
from db.engine import Storage
from emobot.settings import Settings
from runtime.botclient import BotClient
from runtime.serving import Serving
from runtime.telegram import make_client
from worker import metrics
from worker.service import Worker


def serve(settings: Settings) -> None:
    """Run one worker until SIGTERM or Ctrl-C (`emobot worker`)."""

    def build(storage: Storage, bot: BotClient | None, stack: AsyncExitStack) -> Serving:
        assert bot is not None  # needs_bot
        worker = Worker(settings, storage, bot)
        queue_metrics = metrics.register_queue_collector(storage)
        stack.callback(REGISTRY.unregister, queue_metrics)

        async def model_loaded() -> None:
            if worker.models.current is None:
                raise RuntimeError("the model is still loading")

        return Serving(worker, {"model": model_loaded}, [queue_metrics.refresh])

    asyncio.run(
        runtime.serving.serve(settings, "worker", build, needs_bot=True, bot_factory=make_client)
    )
