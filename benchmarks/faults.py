"""The platform when production misbehaves: each scenario puts a fault under a burst of photos
from several users and counts what the users got (issue 21).

    .venv/bin/python -m benchmarks.faults [--scenarios baseline,db_restart,...] [--photos 60]
        [--db-down-seconds 30] [--drain-seconds 45] [--json PATH]

Real processes on loopback: an embedded PostgreSQL of its own in a temporary folder (started
and stopped from separate processes, so that `pg_ctl stop -m immediate` is like a crash),
migrations and the shipped model (`emobot run --prepare-only`), a local blob store, the fake Bot
API (`playground/botapi/`) in this process, two bot replicas (`python -m cli bot`) and two
workers (`python -m cli worker`) with their default settings.

The bot replicas run in webhook mode, as in Kubernetes: this process plays Telegram and the
load balancer in front of them, posting each update to a live replica in turn (the album
scenario picks the replica) and posting it again, to a live replica, while the answer is not
200 (Telegram redelivers an update its webhook refused). Two replicas polling one fake Bot API
would both receive every update, which Telegram does not allow (409 Conflict).

Scenarios (fresh users, hence fresh chats, in each; `--photos` photos are sent evenly over
`--burst-seconds` by 12 users, 5 each for the default 60, and the fault starts 2 s in; while it
lasts and 5 s after, one more photo every 0.5 s; all photos are `tests/data/faces/astronaut.jpg`):

- `baseline`: no fault (the reference for the others' latency);
- `db_restart`: `pg_ctl stop -m immediate`, `--db-down-seconds` down, started again (the
  fault lasts until the server is ready: its start and crash recovery add a few seconds);
- `worker_kill`: `kill -9` of one worker, started again at once (as Kubernetes does);
- `bot_rolling`: SIGTERM to each bot replica in turn, right after an update was delivered to
  it (under load a replica always has one in hand), then taken out of the rotation, waited for
  up to 30 s (killed after, as Kubernetes does), started again and waited for before the next;
- `album_replicas`: `--photos`/10 users each /contribute an album of 10 photos (distinct faces
  cut from the test photos) whose updates alternate between the two replicas, delivered at
  once; then "Done" and the batch is discarded. `answered` is the photos in the batch the
  summary names, `lost` the photos neither in it nor refused (all were told "accepted");
- `flood`: the fake Bot API answers 429 retry_after=5 to the first attempt of every prediction
  sent to one chat, a busy one (every fourth photo is its; the bot's own "working on it" passes,
  so that the chat's requests reach the queue with the others': item 4 of the issue is about
  the worker); the other chats' latency against `baseline`'s (`others_delay_s`: their p95 less
  baseline's p95).

Counted per scenario: `sent`; `answered` (photos with a prediction replied to them);
`lost` (no prediction within `--drain-seconds` after the last photo and the end of the fault);
`duplicates` (photos answered twice or more); `error_replies` (the generic apology, "gave up",
"briefly unavailable" texts of the catalogue, in either language); `recovery_s` (from the end
of the fault to the first prediction after it); `held_answer_s` (from the start of the fault to
the last prediction of the photos sent before it: how long the photos in flight waited);
latency from send to answer. Takes about 6 minutes.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.emulators import Recorder
from benchmarks.fault_scenarios import ALBUM, Platform, run_scenario
from benchmarks.processes import EmbeddedPostgres, Process, Replica, Telegram, now
from playground.botapi import BotAPIServer

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT / "tests" / "data" / "faces"
LOCALES = ROOT / "emobot" / "locales"
TOKEN = "9:faults"
SCENARIOS = ("baseline", "db_restart", "worker_kill", "bot_rolling", "album_replicas", "flood")
# Catalogue keys whose texts are error replies; any key naming "unavailable" counts too (the
# "briefly unavailable, send it again" answer the fixes add).
ERROR_KEYS = ("error", "worker.gave_up")


def error_texts() -> list[str]:
    """The fixed start of every error text (up to its first placeholder), in every language."""
    from babel.messages.pofile import read_po

    starts = []
    for po in LOCALES.glob("*/LC_MESSAGES/emobot.po"):
        with po.open("rb") as f:
            catalogue = read_po(f)
        for message in catalogue:
            key = str(message.id)
            if key in ERROR_KEYS or "unavailable" in key:
                start = str(message.string).split("{", 1)[0].strip()
                if start:
                    starts.append(start[:40])
    return starts


async def run_all(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    load_before = os.getloadavg()
    emulator = Recorder(error_texts())
    with tempfile.TemporaryDirectory(prefix="emobot-faults-") as tmp_name:
        tmp = Path(tmp_name)
        logs = tmp / "logs"
        logs.mkdir()
        postgres = EmbeddedPostgres(tmp / "pg")
        url = (await asyncio.to_thread(postgres.start)).replace(
            "postgresql://", "postgresql+asyncpg://", 1
        )
        processes: list[Process] = []
        try:
            async with BotAPIServer(emulator) as server, aiohttp.ClientSession() as http:
                env = {k: v for k, v in os.environ.items() if k != "MODEL_PATH"}
                env.update(
                    DATABASE_URL=url,
                    BLOB_STORE_URL=f"file://{tmp / 'blobs'}",
                    BOT_TOKEN=TOKEN,
                    TELEGRAM_API_URL=server.url,
                    DATA_DIR=str(tmp / "var"),
                    LOG_LEVEL="WARNING",
                    PYTHONPATH=str(ROOT),
                )
                prepare = [sys.executable, "-m", "cli", "run", "--prepare-only"]
                done = await asyncio.to_thread(
                    subprocess.run, prepare, env=env, capture_output=True, text=True, cwd=ROOT
                )
                if done.returncode != 0:
                    raise RuntimeError(f"prepare failed: {done.stderr[-2000:]}")
                bots = [Replica(env, logs) for _ in range(2)]
                workers = [Process("worker", env, logs) for _ in range(2)]
                processes = [*bots, *workers]
                for process in processes:
                    process.start()
                await asyncio.gather(*(process.ready(http) for process in processes))
                telegram = Telegram(emulator, bots)
                delivering = asyncio.create_task(telegram.run(http))
                photo = (FACES / "astronaut.jpg").read_bytes()
                p = Platform(emulator, telegram, bots, workers, postgres, http, args, photo)
                results = []
                for name in names:
                    began = now()
                    result = await run_scenario(p, name)
                    result["seconds"] = round(now() - began, 1)
                    results.append(result)
                    print(row(result), flush=True)
                    # Every process up again before the next scenario.
                    await asyncio.gather(*(process.ready(http) for process in processes))
                delivering.cancel()
                for process in processes:
                    await process.stop()
        finally:
            for process in processes:
                if process.process is not None and process.process.poll() is None:
                    process.process.kill()
            with contextlib.suppress(Exception):
                await asyncio.to_thread(postgres.stop)
            if args.keep_logs:
                shutil.copytree(logs, args.keep_logs, dirs_exist_ok=True)
    return {
        "photos": args.photos,
        "burst_seconds": args.burst_seconds,
        "db_down_seconds": args.db_down_seconds,
        "drain_seconds": args.drain_seconds,
        "redelivered_updates": telegram.redelivered,
        "scenarios": results,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
    }


COLUMNS = ("sent", "answered", "lost", "duplicates", "error_replies", "recovery_s")


def header() -> str:
    titles = ("scenario", *COLUMNS, "held_answer_s", "p95 latency s", "notes")
    return "\n".join(["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)])


def row(result: dict[str, Any]) -> str:
    notes = []
    if "others_delay_s" in result:
        notes.append(f"other chats' p95 +{result['others_delay_s']} s against baseline")
    if "split_albums" in result:
        notes.append(
            f"{result['split_albums']} albums split, {result['accepted_replies']} 'accepted', "
            f"{result['refused']} refused"
        )
    if "replicas" in result:
        codes = ", ".join(f"exit {r['exit_code']} in {r['stop_s']} s" for r in result["replicas"])
        notes.append(codes)
    if result.get("fault_s") is not None:
        notes.append(f"fault {result['fault_s']} s")

    def show(value: Any) -> str:
        return "–" if value is None else str(value)

    latency = result.get("latency_s", {}).get("p95")
    cells = [
        result["name"],
        *(show(result.get(c)) for c in COLUMNS),
        show(result.get("held_answer_s")),
        show(latency),
        "; ".join(notes),
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, in this order (default all: {','.join(SCENARIOS)})",
    )
    parser.add_argument("--photos", type=int, default=60, help="photos per scenario (default 60)")
    parser.add_argument(
        "--burst-seconds", type=float, default=8.0, help="the photos go out over this (default 8)"
    )
    parser.add_argument(
        "--db-down-seconds", type=float, default=30.0, help="db_restart's outage (default 30 s)"
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=45.0,
        help="after the last photo, wait this long for answers (default 45 s)",
    )
    parser.add_argument("--keep-logs", help="copy the processes' logs to this folder")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    if unknown := set(names) - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if args.photos < ALBUM:
        parser.error(f"--photos must be at least {ALBUM}")
    print(header(), flush=True)
    result = asyncio.run(run_all(args, names))
    load = result["machine"]["load_average_before"][0]
    print(f"load average before {load} on {result['machine']['cpus']} CPUs")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
