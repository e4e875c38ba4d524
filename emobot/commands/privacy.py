"""Privacy commands: purge."""

import argparse
import asyncio
from typing import Any

from emobot.settings import Settings


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "purge", help="delete prediction photos past PREDICTION_RETENTION_HOURS",
        description="Delete the photo of every prediction request answered (or failed for "
        "good) more than PREDICTION_RETENTION_HOURS ago, keeping the result, unless a "
        "contributed sample or a newer request has the same photo; and export archives whose "
        "download link expired. Workers do this by themselves every PURGE_INTERVAL_SECONDS.",
    )  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="print what would go, change nothing")
    p.set_defaults(handler=purge)


def purge(args: argparse.Namespace, settings: Settings) -> None:
    from db.engine import open_storage
    from db.retention import purge as purge_photos

    async def run() -> None:
        async with open_storage(settings) as storage:
            report = await purge_photos(
                storage.sessions, storage.blobs,
                retention_hours=settings.prediction_retention_hours, dry_run=args.dry_run,
            )  # fmt: skip
        print("\n".join(report.lines(args.dry_run)))

    asyncio.run(run())
