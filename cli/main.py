"""The `emobot` command: one entry point for every process and tool of the platform."""

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import cli.commands
from emobot.logs import setup_logging
from emobot.settings import get_settings


def _build() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser, and its subcommands by name."""
    parser = argparse.ArgumentParser(
        prog="emobot",
        description="Emotion bot platform: bot, worker, trainer and dataset tools.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(cli.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"cli.commands.{module.name}").register(subparsers)
    return parser, subparsers.choices


def command_names() -> set[str]:
    """The subcommands `python -m cli` has in this checkout."""
    return set(_build()[1])


def main(argv: Sequence[str] | None = None) -> None:
    args = _build()[0].parse_args(argv)
    settings = get_settings()
    setup_logging(settings.log_level)
    # Every subcommand sets `handler(args, settings) -> int | None`.
    sys.exit(args.handler(args, settings) or 0)
