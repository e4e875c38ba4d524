"""Privacy commands: purge, forget."""

import argparse
import asyncio
from typing import Any

from emobot.settings import Settings


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "purge",
        help="delete prediction photos past PREDICTION_RETENTION_HOURS",
        description="Delete the photo of every prediction request answered (or failed for "
        "good) more than PREDICTION_RETENTION_HOURS ago, keeping the result, unless a "
        "contributed sample or a newer request has the same photo; export archives whose "
        "download link expired; and orphan photos (stored over an hour ago for a row whose "
        "insert failed, which no row uses). Workers do this by themselves every "
        "PURGE_INTERVAL_SECONDS.",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would go, change nothing")
    p.set_defaults(handler=purge)

    p = subparsers.add_parser(
        "forget",
        help="erase everything stored about one Telegram user",
        description="What /forget does, for an erasure asked for by other means: the user's "
        "contributed samples, prediction requests, dialog state and user row, the photos no "
        "one else uses, and every export archive in the blob store.",
    )
    p.add_argument("telegram_id", type=int, metavar="TELEGRAM_ID", help="the user's Telegram id")
    p.set_defaults(handler=forget)


def purge(args: argparse.Namespace, settings: Settings) -> None:
    from db.engine import open_storage
    from db.retention import purge as purge_photos

    async def run() -> None:
        async with open_storage(settings) as storage:
            report = await purge_photos(
                storage.sessions,
                storage.blobs,
                retention_hours=settings.prediction_retention_hours,
                dry_run=args.dry_run,
            )
        print("\n".join(report.lines(args.dry_run)))

    asyncio.run(run())


def forget(args: argparse.Namespace, settings: Settings) -> int:
    from db.engine import open_storage
    from db.erasure import forget as erase

    async def run() -> int:
        async with open_storage(settings) as storage, storage.sessions() as session:
            erased = await erase(session, storage.blobs, args.telegram_id)
        blobs = erased.blobs
        print(
            f"Telegram user {args.telegram_id}: {erased.contributions} contributed samples, "
            f"{erased.predictions} prediction requests, {erased.dialogs} dialog states and "
            f"{'the' if erased.user else 'no'} user row deleted"
        )
        for key in blobs.removed + erased.exports:
            print(f"removed {key}")
        for key in blobs.kept:
            print(f"kept {key} (another sample or request uses it)")
        for key in blobs.busy + blobs.failed:
            print(f"NOT removed {key}: being written or the store failed; run forget again")
        return 1 if blobs.busy or blobs.failed else 0

    return asyncio.run(run())
