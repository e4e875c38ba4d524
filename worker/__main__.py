"""`python -m worker`: run one prediction worker until SIGTERM or Ctrl-C."""

import asyncio
import logging
import signal
import sys

from emobot.settings import Settings, get_settings


async def serve(settings: Settings) -> None:
    from db.engine import open_storage
    from worker.replies import make_bot
    from worker.service import Worker

    bot = make_bot(settings)
    try:
        async with open_storage(settings) as storage:
            worker = Worker(settings, storage, bot)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, worker.stop)
            logging.getLogger("worker").info("%s: started", worker.name)
            await worker.run()
            logging.getLogger("worker").info("%s: stopped", worker.name)
    finally:
        await bot.session.close()


def main(settings: Settings) -> int:
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    sys.exit(main(settings))
