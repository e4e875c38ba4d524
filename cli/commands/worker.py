"""`emobot worker`: the prediction worker."""

import argparse
from typing import Any

from emobot.settings import Settings


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "worker",
        help="answer queued prediction requests in batches",
        description="Claim queued prediction requests in micro-batches (BATCH_SIZE, "
        "BATCH_WAIT_MS), find the faces, run the model and reply through the Bot API. "
        "Several workers can run side by side; SIGTERM finishes the batch in hand.",
    )
    p.set_defaults(handler=worker)


def worker(args: argparse.Namespace, settings: Settings) -> None:
    from emobot.logs import exit_now
    from worker.app import serve

    serve(settings)
    exit_now(0)
