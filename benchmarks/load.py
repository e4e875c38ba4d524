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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import func, select

from db.engine import make_engine, make_sessionmaker
from db.models import PredictionRequest
from playground.botapi import BotAPIEmulator, BotAPIServer, BotCall, Json

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT / "tests" / "data" / "faces"
PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
TOKEN = "9:load"
QUEUED_NOTICE = "working on it"  # the bot's "photo received" message (users speak English)


@dataclass
class Answers:
    """When each user sent and when the answers came, stamped as the fake Bot API records them."""

    sent: dict[int, float] = field(default_factory=dict)
    answered: dict[int, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class TimedEmulator(BotAPIEmulator):
    """The fake Bot API, stamping the worker's answers as they arrive (scanning every chat's
    calls per change would cost more than the platform under test)."""

    def __init__(self, answers: Answers, expected: int) -> None:
        super().__init__()
        self.answers = answers
        self.expected = expected
        self.all_answered = asyncio.Event()

    def _record(
        self,
        method: str,
        chat_id: int | None,
        params: Json,
        message_id: int | None = None,
        files: dict[str, bytes] | None = None,
    ) -> BotCall:
        call = super()._record(method, chat_id, params, message_id, files)
        if chat_id in self.answers.sent and call.is_message:
            text = call.text or ""
            if call.method == "sendPhoto" or "%" in text:
                self.answers.answered.setdefault(chat_id, []).append(time.perf_counter())
                if len(self.answers.answered) == self.expected:
                    self.all_answered.set()
            elif QUEUED_NOTICE not in text:
                self.answers.errors.append(f"{chat_id}: {text[:80]}")
        return call


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
                prepare = [sys.executable, "-m", "emobot", "run", "--prepare-only"]
                done = await asyncio.to_thread(
                    subprocess.run, prepare, env=env, capture_output=True, text=True
                )
                if done.returncode != 0:
                    raise RuntimeError(f"prepare failed: {done.stderr[-2000:]}")

                def start(command: str) -> None:
                    log = (Path(tmp) / f"{command}-{len(processes)}.log").open("wb")
                    command_line = [sys.executable, "-m", "emobot", command]
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
    args = parser.parse_args()
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
