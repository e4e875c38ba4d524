"""The `emobot` command: one entry point for every process and tool of the platform."""

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import emobot.commands
from emobot.logs import setup_logging
from emobot.settings import get_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emobot",
        description="Emotion bot platform: bot, worker, trainer and dataset tools.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(emobot.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"emobot.commands.{module.name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    setup_logging(settings.log_level)
    # Every subcommand sets `handler(args, settings) -> int | None`.
    sys.exit(args.handler(args, settings) or 0)
