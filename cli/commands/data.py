"""Dataset and schema commands: migrate, import-fer2013, import-ferplus, export, stats."""

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobot.settings import Settings

if TYPE_CHECKING:
    from ml.ferplus import Votes


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "migrate",
        help="upgrade the database schema to the newest revision",
        description="Apply every Alembic revision the database lacks (or go to --revision).",
    )
    p.add_argument("--revision", default="head", help="target revision (default: head)")
    p.set_defaults(handler=migrate)

    p = subparsers.add_parser(
        "import-fer2013",
        help="import FER2013 (or an export) into the dataset",
        description="Read a zip in FER2013's layout (train|test/<emotion>/*.jpg) or an "
        "`emobot export` zip, store every distinct image in the blob store and a samples row "
        "per image. Running it again adds nothing.",
    )
    p.add_argument("archive", type=Path, help="path of the zip, e.g. ../shared/data/fer2013.zip")
    p.add_argument("--concurrency", type=int, default=16, help="parallel uploads (default 16)")
    p.add_argument(
        "--ferplus",
        type=Path,
        metavar="CSV",
        help="FER+ votes to store with the images (as import-ferplus does)",
    )
    p.set_defaults(handler=import_fer2013)

    p = subparsers.add_parser(
        "import-ferplus",
        help="add FER+ votes to the imported FER2013 images",
        description="Read the FER+ votes file (one row per file of fer2013.zip) and store each "
        "imported image's votes, matched by its archive paths. Training then uses the vote "
        "shares as targets and leaves out images the votes call no face. Running it again "
        "changes nothing.",
    )
    p.add_argument("votes", type=Path, help="e.g. ../shared/data/ferplus/fer2013_ferplus_votes.csv")
    p.set_defaults(handler=import_ferplus)

    p = subparsers.add_parser(
        "export",
        help="write the dataset as a zip with a CSV manifest",
        description="Write train|test/<class>/<sha256>.jpg for every sample and manifest.csv. "
        "Contributors are pseudonyms (contributor_key: a hash keyed with PSEUDONYM_KEY) unless "
        "--ids raw writes their Telegram ids (contributor_id).",
    )
    p.add_argument("output", type=Path, help="zip file to write")
    p.add_argument("--source", choices=["fer2013", "telegram", "feedback"], help="only this source")
    p.add_argument("--split", choices=["train", "test"], help="only this split")
    p.add_argument(
        "--status",
        default="active",
        choices=["active", "deleted", "all"],
        help="samples of this status (default: active)",
    )
    p.add_argument(
        "--ids",
        default="pseudonymous",
        choices=["pseudonymous", "raw"],
        help="how contributors are named in the manifest (default: pseudonymous)",
    )
    p.set_defaults(handler=export)

    p = subparsers.add_parser(
        "stats",
        help="print the dataset's counts per split, class and source",
        description="Files imported from FER2013 before duplicate removal, distinct images "
        "stored, flagged images, and what training may use.",
    )
    p.set_defaults(handler=stats)


def migrate(args: argparse.Namespace, settings: Settings) -> None:
    from db.engine import database_url, make_engine
    from db.migrate import current, upgrade

    async def run() -> None:
        engine = make_engine(database_url(settings))
        try:
            await upgrade(engine, args.revision)
            print(f"database at revision {await current(engine)}")
        finally:
            await engine.dispose()

    asyncio.run(run())


def _read_votes(path: Path) -> "dict[str, Votes] | None":
    """The votes file, or None after saying what is wrong with it."""
    from ml.ferplus import read_votes

    try:
        return read_votes(path)
    except FileNotFoundError:
        print(f"no such votes file: {path}", file=sys.stderr)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        print(f"cannot read FER+ votes from {path}: {exc}", file=sys.stderr)
    return None


def import_fer2013(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from cli.importer import import_archive, import_votes
    from db.engine import open_storage

    if not args.archive.is_file():
        print(f"no such archive: {args.archive}")
        return 2
    votes = None
    if args.ferplus:  # read before any image is stored: a bad file stops the import first
        votes = _read_votes(args.ferplus)
        if votes is None:
            return 2

    async def run() -> None:
        async with open_storage(settings) as storage:
            with tqdm(desc="uploading", unit="img", leave=False) as bar:
                summary = await import_archive(
                    args.archive,
                    storage.sessions,
                    storage.blobs,
                    concurrency=args.concurrency,
                    progress=bar.update,
                )
            print(summary.table())
            if votes is not None:
                print((await import_votes(storage.sessions, votes)).table())

    asyncio.run(run())
    return 0


def import_ferplus(args: argparse.Namespace, settings: Settings) -> int:
    from cli.importer import import_votes
    from db.engine import open_storage

    votes = _read_votes(args.votes)
    if votes is None:
        return 2

    async def run() -> None:
        async with open_storage(settings) as storage:
            print((await import_votes(storage.sessions, votes)).table())

    asyncio.run(run())
    return 0


def export(args: argparse.Namespace, settings: Settings) -> None:
    from tqdm import tqdm

    from db.engine import open_storage
    from db.exporter import export_dataset

    async def run() -> None:
        async with open_storage(settings) as storage:
            with tqdm(desc="exporting", unit="img", leave=False) as bar:

                def progress(done: int, total: int) -> None:
                    bar.total = total
                    bar.n = done
                    bar.refresh()

                summary = await export_dataset(
                    args.output,
                    storage.sessions,
                    storage.blobs,
                    source=args.source,
                    split=args.split,
                    status=None if args.status == "all" else args.status,
                    progress=progress,
                    raw_ids=args.ids == "raw",
                    pseudonym_key=settings.pseudonym_key,
                )
        named = "Telegram ids" if args.ids == "raw" else "pseudonyms"
        print(
            f"{summary.images:,} images ({summary.bytes / 1e6:.1f} MB) written to "
            f"{args.output}; contributors: {named}"
        )

    asyncio.run(run())


def stats(args: argparse.Namespace, settings: Settings) -> None:
    from db.engine import open_storage
    from db.stats import dataset_stats

    async def run() -> None:
        async with open_storage(settings) as storage, storage.sessions() as session:
            print((await dataset_stats(session)).table())

    asyncio.run(run())
