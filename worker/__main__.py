"""`python -m worker`: run one prediction worker until SIGTERM or Ctrl-C."""

import asyncio
import logging
import signal
import sys

from emobot.logs import setup_logging
from emobot.settings import Settings, get_settings


async def serve(settings: Settings) -> None:
    from prometheus_client import REGISTRY

    from db.engine import open_storage, ping
    from emobot.operations import serve_operations
    from worker.metrics import register_queue_collector
    from worker.replies import make_bot
    from worker.service import Worker

    bot = make_bot(settings)
    try:
        async with open_storage(settings) as storage:
            worker = Worker(settings, storage, bot)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, worker.stop)
            queue_metrics = register_queue_collector(storage)

            async def model_loaded() -> None:
                if worker.models.current is None:
                    raise RuntimeError("the model is still loading")

            checks = {"database": lambda: ping(storage.engine), "model": model_loaded}
            try:
                async with serve_operations(settings.metrics_port, checks, [queue_metrics.refresh]):
                    logging.getLogger("worker").info("%s: started", worker.name)
                    await worker.run()
                    logging.getLogger("worker").info("%s: stopped", worker.name)
            finally:
                REGISTRY.unregister(queue_metrics)
    finally:
        await bot.session.close()


def main(settings: Settings) -> int:
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    settings = get_settings()
    setup_logging(settings.log_level)
    sys.exit(main(settings))
