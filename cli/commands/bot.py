"""`emobot bot`: the Telegram bot (long polling, or a webhook when WEBHOOK_URL is set)."""

import argparse
from typing import Any

from emobot.settings import Settings


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bot",
        help="run the Telegram bot",
        description="Serve the bot: long polling by default; a webhook server on "
        "WEBHOOK_HOST:WEBHOOK_PORT when WEBHOOK_URL is set (WEBHOOK_SECRET is then required). "
        "BOT_TOKEN is Telegram's token; without it TELEGRAM_API_URL must name a playground Bot "
        "API. SIGTERM answers the updates in hand (up to SHUTDOWN_GRACE_SECONDS), then exits.",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> None:
    from bot.app import run_bot
    from emobot.logs import exit_now
    from runtime.serving import run_command

    run_command(run_bot(settings))
    exit_now(0)
