"""`emobot run`: the whole platform under one supervisor process."""

import argparse
import asyncio
from typing import Any

from emobot.settings import Settings


def register(subparsers: Any) -> None:
    from cli.supervisor import PROCESSES

    p = subparsers.add_parser(
        "run",
        help="start the platform: bot, worker and trainer under one supervisor",
        description="Start an embedded PostgreSQL when DATABASE_URL is unset, apply migrations, "
        "register the shipped model when none is, start the playground (a local Bot API with a "
        "web chat page) when BOT_TOKEN is unset, then run bot, worker and trainer as child "
        "processes, restarting crashed ones. Ctrl-C stops everything.",
    )
    p.add_argument(
        "--processes",
        default=",".join(PROCESSES),
        help=f"comma-separated processes to run (default: {','.join(PROCESSES)})",
    )
    p.add_argument("--host", default="127.0.0.1", help="playground address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="playground port (default 8080)")
    p.add_argument(
        "--prepare-only",
        action="store_true",
        help="apply migrations and register the shipped model, then exit (compose's migrate)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from cli.supervisor import PROCESSES, prepare_database, run_platform
    from emobot.logs import exit_now

    processes = [name for name in args.processes.split(",") if name]
    unknown = sorted(set(processes) - set(PROCESSES))
    if unknown:
        print(f"unknown process {', '.join(unknown)}: choose from {', '.join(PROCESSES)}")
        return 2
    if args.prepare_only:
        asyncio.run(prepare_database(settings))
        return 0
    exit_now(asyncio.run(run_platform(settings, processes, args.host, args.port)))
