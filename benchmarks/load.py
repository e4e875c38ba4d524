"""The platform under load: N simulated users send photos through the fake Bot API to the real
`emobot bot` and `emobot worker` processes, and every answer is timed.

Each user sends one photo at a moment drawn evenly over the ramp (`--ramp-seconds`): a 512×512
photo with one face, or (every `--three-face-every`-th user) one with three faces. Latency runs
from the user's send (the update handed to the bot's getUpdates) to the fake Bot API receiving
the worker's answer: bot download, blob store, queue, face detection, model, reply.
`errors` counts answers that are not a prediction (an apology, a refusal); `lost` counts users
with no answer within `--timeout` plus requests not `done` in the database at the end; both
must be 0. `dup` counts users answered more than once.

    .venv/bin/python -m benchmarks.load [--users 200] [--ramp-seconds 20] [--workers 1]
        [--json PATH]
    .venv/bin/python -m benchmarks.load --dialogs 300 --ramp-seconds 10 [--pool 5] [--json PATH]

`--dialogs N` measures the bot alone instead: N people in the middle of a dialog (half in
/contribute, half in /predict) against one `emobot bot` with a pool of `--pool` connections
(see run_dialogs).

Everything is on loopback: a fresh PostgreSQL database on 127.0.0.1:5432 (TEST_PG_DSN, as for
the tests; dropped at the end), a local blob store in a temporary folder, the fake Bot API in
this process. The shipped model answers (`emobot run --prepare-only` registers it).
"""

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any

import asyncpg
import cv2
from sqlalchemy import func, select

from benchmarks.emulators import Answers, DialogEmulator, TimedEmulator
from db.engine import make_engine, make_sessionmaker
from db.models import PredictionRequest
from playground.botapi import BotAPIServer, BotCall, FakeUser

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT / "tests" / "data" / "faces"
PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
TOKEN = "9:load"


def percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def run_load(args: argparse.Namespace) -> dict[str, Any]:
    one_face = (FACES / "astronaut.jpg").read_bytes()
    three_faces = (FACES / "three_faces.jpg").read_bytes()
    name = f"emobot_load_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    database_url = f"{base}/{name}"
    answers = Answers()
    emulator = TimedEmulator(answers, args.users)
    processes: list[subprocess.Popen[bytes]] = []
    load_before = os.getloadavg()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with BotAPIServer(emulator) as server:
                env = {
                    **os.environ,
                    "DATABASE_URL": database_url,
                    "BLOB_STORE_URL": f"file://{Path(tmp) / 'blobs'}",
                    "BOT_TOKEN": TOKEN,
                    "TELEGRAM_API_URL": server.url,
                    "DATA_DIR": str(Path(tmp) / "var"),
                    "LOG_LEVEL": "WARNING",
                }
                prepare = [sys.executable, "-m", "cli", "run", "--prepare-only"]
                done = await asyncio.to_thread(
                    subprocess.run, prepare, env=env, capture_output=True, text=True
                )
                if done.returncode != 0:
                    raise RuntimeError(f"prepare failed: {done.stderr[-2000:]}")

                def start(command: str) -> None:
                    log = (Path(tmp) / f"{command}-{len(processes)}.log").open("wb")
                    command_line = [sys.executable, "-m", "cli", command]
                    processes.append(
                        subprocess.Popen(command_line, env=env, stdout=log, stderr=log, cwd=ROOT)
                    )

                start("bot")
                for _ in range(args.workers):
                    start("worker")
                async with asyncio.timeout(120):  # the bot is up once its menus are set
                    while "default" not in emulator.commands:  # noqa: ASYNC110 - a dict
                        await asyncio.sleep(0.1)
                await asyncio.sleep(args.warmup)  # workers load TensorFlow and the model

                users = [
                    emulator.user(10_000 + i, f"u{i}", language_code="en")
                    for i in range(args.users)
                ]
                step = args.ramp_seconds / max(args.users - 1, 1)
                started = time.perf_counter()
                for i, user in enumerate(users):
                    await asyncio.sleep(max(0.0, started + i * step - time.perf_counter()))
                    answers.sent[user.id] = time.perf_counter()
                    three = args.three_face_every and i % args.three_face_every == 0
                    user.send_photo(three_faces if three else one_face)
                with suppress(TimeoutError):
                    async with asyncio.timeout(args.timeout):
                        await emulator.all_answered.wait()
                finished = time.perf_counter()
                await asyncio.sleep(2)  # let the last replies be recorded as sent
                engine = make_engine(database_url)
                async with make_sessionmaker(engine)() as session:
                    statuses = dict(
                        (
                            await session.execute(
                                select(PredictionRequest.status, func.count()).group_by(
                                    PredictionRequest.status
                                )
                            )
                        ).all()
                    )
                await engine.dispose()
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.wait(30)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    latencies = [1000 * (t[0] - answers.sent[chat]) for chat, t in answers.answered.items()]
    unanswered = len(answers.sent) - len(answers.answered)
    not_done = sum(n for status, n in statuses.items() if status != "done")
    missing_rows = len(answers.sent) - sum(statuses.values())
    last = max((t[0] for t in answers.answered.values()), default=finished)
    return {
        "users": args.users,
        "ramp_seconds": args.ramp_seconds,
        "workers": args.workers,
        "three_face_every": args.three_face_every,
        "answered": len(answers.answered),
        "throughput_per_s": round(len(answers.answered) / (last - started), 2),
        "latency_ms": {
            "p50": round(percentile(latencies, 50)),
            "p95": round(percentile(latencies, 95)),
            "p99": round(percentile(latencies, 99)),
            "max": round(max(latencies, default=float("nan"))),
        },
        "errors": len(answers.errors),
        "error_samples": answers.errors[:5],
        "lost": unanswered + max(not_done, 0) + max(missing_rows, 0),
        "dup": sum(1 for t in answers.answered.values() if len(t) > 1),
        "statuses": statuses,
        "seconds": round(finished - started, 1),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
    }


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_bot(env: dict[str, str], log: Path) -> "subprocess.Popen[bytes]":
    out = log.open("wb")
    command = [sys.executable, "-m", "cli", "bot"]
    return subprocess.Popen(command, env=env, stdout=out, stderr=out, cwd=ROOT)


# What each dialog ends with, and the texts that are no answer but a failure.
ACCEPTED, SUMMARY, QUEUED = "Photo accepted", "Save them?", "working on it"
FAILURES = ("something went wrong", "briefly unavailable", "Too many messages")


async def run_dialogs(args: argparse.Namespace) -> dict[str, Any]:
    """`--dialogs N`: N people in the middle of a dialog, half of them in /contribute (class
    chosen) and half in /predict, each sending at a moment drawn evenly over the ramp: an
    album of two photos then "Done" (ending at the batch summary), or a photo (ending at
    "working on it"). One `emobot bot` process with a pool of DB_POOL_SIZE connections, no
    overflow; no worker (the bot's part is measured)."""
    astronaut = (FACES / "astronaut.jpg").read_bytes()
    image = cv2.imread(str(FACES / "astronaut.jpg"))
    mirrored = cv2.imencode(".jpg", cv2.flip(image, 1), [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
    album = [astronaut, mirrored.tobytes()]  # two different faces: no repeat within a batch
    name = f"emobot_dialogs_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    emulator = DialogEmulator()
    process: subprocess.Popen[bytes] | None = None
    errors: list[str] = []
    latencies: dict[int, float] = {}
    duplicates = 0
    load_before = os.getloadavg()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with BotAPIServer(emulator) as server:
                env = {
                    **os.environ,
                    "DATABASE_URL": f"{base}/{name}",
                    "BLOB_STORE_URL": f"file://{Path(tmp) / 'blobs'}",
                    "BOT_TOKEN": TOKEN,
                    "TELEGRAM_API_URL": server.url,
                    "DATA_DIR": str(Path(tmp) / "var"),
                    "LOG_LEVEL": "WARNING",
                    "DB_POOL_SIZE": str(args.pool),
                    "DB_MAX_OVERFLOW": "0",
                }
                migrate = [sys.executable, "-m", "cli", "migrate"]
                done = await asyncio.to_thread(
                    subprocess.run, migrate, env=env, capture_output=True, text=True, cwd=ROOT
                )
                if done.returncode != 0:
                    raise RuntimeError(f"migrate failed: {done.stderr[-2000:]}")
                process = _start_bot(env, Path(tmp) / "bot.log")
                async with asyncio.timeout(120):  # the bot is up once its menus are set
                    while "default" not in emulator.commands:  # noqa: ASYNC110 - a dict
                        await asyncio.sleep(0.1)

                users = [
                    emulator.user(20_000 + i, f"d{i}", language_code="en")
                    for i in range(args.dialogs)
                ]
                contributors = set(range(0, args.dialogs, 2))

                def answer(c: BotCall) -> bool:
                    return c.is_message or c.method == "editMessageText"

                async def into_dialog(i: int, user: FakeUser) -> int:
                    """Untimed: bring the user to the middle of a dialog; returns the index of
                    the chat's calls from which the timed part reads."""
                    if i not in contributors:
                        user.send_text("/predict")
                        _, seen = await emulator.next_call(user.id, answer, 0, 60)
                        return seen
                    user.send_text("/contribute")
                    ask, seen = await emulator.next_call(user.id, answer, 0, 60)
                    if not ask.buttons:
                        raise RuntimeError(f"setup: {user.id} was answered {ask.text!r}")
                    user.press(ask, data="consent:1")
                    edited = lambda c: c.method == "editMessageText"  # noqa: E731
                    choose, seen = await emulator.next_call(user.id, edited, seen, 60)
                    user.press(choose, data="label:happy")
                    _, seen = await emulator.next_call(user.id, edited, seen, 60)
                    return seen

                marks: list[int] = []
                for start in range(0, len(users), 50):  # in steps: setup is not measured
                    chunk = list(enumerate(users))[start : start + 50]
                    marks += await asyncio.gather(*(into_dialog(i, u) for i, u in chunk))
                await asyncio.sleep(1)

                async def timed(i: int, user: FakeUser, seen: int) -> None:
                    nonlocal duplicates
                    await asyncio.sleep(max(0.0, started + i * step - time.perf_counter()))
                    sent = time.perf_counter()
                    try:
                        if i in contributors:
                            user.send_album(album)
                            offer = None
                            for _ in album:
                                offer, seen = await emulator.next_call(
                                    user.id, answer, seen, args.timeout
                                )
                                if ACCEPTED not in (offer.text or ""):
                                    raise LookupError(offer.text)
                            assert offer is not None
                            user.press(offer, data="batch:done")
                            final, seen = await emulator.next_call(
                                user.id, lambda c: c.is_message, seen, args.timeout
                            )
                            expected = SUMMARY
                        else:
                            user.send_photo(astronaut)
                            final, seen = await emulator.next_call(
                                user.id, answer, seen, args.timeout
                            )
                            expected = QUEUED
                        if expected not in (final.text or ""):
                            raise LookupError(final.text)
                        latencies[user.id] = time.perf_counter() - sent
                    except LookupError as exc:
                        errors.append(f"{user.id}: {str(exc)[:80]}")
                    except TimeoutError:
                        pass  # counted as lost
                    await asyncio.sleep(2)  # a second answer, if there were one
                    extra = [c for c in emulator.by_chat.get(user.id, [])[seen:] if answer(c)]
                    duplicates += bool(extra)

                step = args.ramp_seconds / max(args.dialogs - 1, 1)
                cpu_before = _cpu_seconds(process.pid)
                started = time.perf_counter()
                await asyncio.gather(*(timed(i, u, marks[i]) for i, u in enumerate(users)))
                finished = time.perf_counter() - 2
                bot_cpu = _cpu_seconds(process.pid) - cpu_before
                for calls in emulator.by_chat.values():
                    errors += [
                        f"{c.chat_id}: {c.text[:80]}"
                        for c in calls
                        if c.text and any(f in c.text for f in FAILURES)
                    ]
                process.terminate()
                process.wait(30)
    finally:
        if process is not None and process.poll() is None:
            process.kill()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    seconds = [1000 * v for v in latencies.values()]
    return {
        "dialogs": args.dialogs,
        "contribute": len(contributors),
        "predict": args.dialogs - len(contributors),
        "ramp_seconds": args.ramp_seconds,
        "pool": args.pool,
        "answered": len(latencies),
        "latency_ms": {
            "p50": round(percentile(seconds, 50)),
            "p95": round(percentile(seconds, 95)),
            "max": round(max(seconds, default=float("nan"))),
        },
        "errors": len(errors),
        "error_samples": errors[:5],
        "lost": args.dialogs - len(latencies) - len(errors),
        "dup": duplicates,
        "seconds": round(finished - started, 1),
        # What the bot process itself used (all its threads): the figure that does not depend
        # on what else the machine runs.
        "bot_cpu_seconds": round(bot_cpu, 1),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
    }


def dialogs_table(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    header = (
        "| dialogs (contribute/predict) | ramp s | pool | answered | p50 ms | p95 ms | max ms "
        "| errors | lost | dup | all done in s | bot CPU s |"
    )
    row = (
        f"| {result['dialogs']} ({result['contribute']}/{result['predict']}) "
        f"| {result['ramp_seconds']} | {result['pool']} | {result['answered']} | {lat['p50']} "
        f"| {lat['p95']} | {lat['max']} | {result['errors']} | {result['lost']} "
        f"| {result['dup']} | {result['seconds']} | {result['bot_cpu_seconds']} |"
    )
    return "\n".join([header, "|" + "---|" * 12, row])


def table(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    header = (
        "| users | workers | answered | throughput (req/s) | p50 ms | p95 ms | p99 ms "
        "| errors | lost | dup |"
    )
    row = (
        f"| {result['users']} | {result['workers']} | {result['answered']} "
        f"| {result['throughput_per_s']} | {lat['p50']} | {lat['p95']} | {lat['p99']} "
        f"| {result['errors']} | {result['lost']} | {result['dup']} |"
    )
    return "\n".join([header, "|" + "---|" * 10, row])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200, help="simulated users (default 200)")
    parser.add_argument(
        "--ramp-seconds",
        type=float,
        default=20.0,
        help="users start evenly over this many seconds (default 20)",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--three-face-every",
        type=int,
        default=10,
        help="every n-th user sends the three-face photo; 0: none",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        help="seconds for the workers to load the model (default 5)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="give up waiting for answers after this (default 300 s)",
    )
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument(
        "--dialogs",
        type=int,
        help="instead: this many people mid-dialog (contribute albums, predictions) against "
        "one bot process, sent over --ramp-seconds",
    )
    parser.add_argument("--pool", type=int, default=5, help="--dialogs: DB_POOL_SIZE (default 5)")
    args = parser.parse_args()
    if args.dialogs:
        dialogs = asyncio.run(run_dialogs(args))
        print(dialogs_table(dialogs))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(dialogs, indent=2) + "\n")
        sys.exit(1 if dialogs["errors"] or dialogs["lost"] or dialogs["dup"] else 0)
    if not 1 <= args.users <= 5000:
        parser.error("--users must be 1–5000")
    result = asyncio.run(run_load(args))
    print(table(result))
    load = result["machine"]["load_average_before"][0]
    print(f"{result['seconds']} s; load average before {load} on {result['machine']['cpus']} CPUs")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if result["errors"] or result["lost"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
