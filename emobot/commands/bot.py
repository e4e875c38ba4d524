"""`emobot bot`: the Telegram bot (long polling, or a webhook when WEBHOOK_URL is set)."""

import argparse
import asyncio
from typing import Any

from emobot.settings import Settings


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bot",
        help="run the Telegram bot",
        description="Serve the bot: long polling by default; a webhook server on WEBHOOK_PORT "
        "with WEBHOOK_SECRET when WEBHOOK_URL is set. BOT_TOKEN is Telegram's token; without "
        "it TELEGRAM_API_URL must name a playground Bot API.",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> None:
    from bot.app import run_bot

    asyncio.run(run_bot(settings))
