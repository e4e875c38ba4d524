"""How fast the prediction worker answers, with the shipped model on this machine.

1. The raw model: faces/s of `Classifier.predict` at batch 1, 8, 32 and 64.
2. The worker as it runs in production (`python -m cli worker`, its own process) against a fresh
   PostgreSQL database, a local blob store and the fake Bot API: requests (one face each) are
   enqueued at 5, 20 and 50 per second, then all at once (`burst`); throughput is answered
   requests per second from the first enqueue to the last reply, latency is enqueue → the Bot
   API receiving the reply. Once with batching (BATCH_SIZE 32, BATCH_WAIT_MS 50) and once
   without (BATCH_SIZE 1, BATCH_WAIT_MS 0). Each request carries a 48×48 face crop (`crop`:
   classified whole, so the queue and the model are measured) or a 1280×960 JPEG, the size
   Telegram delivers, with one face (`photo`) or three (`group`: answered with an annotated
   picture); decoding and face detection included.

    .venv/bin/python -m benchmarks.worker [--json PATH] [--seconds 10] [--burst 300]
        [--photo crop|photo|group|all] [--rates 5,20,50] [--worker-log INFO]

Needs PostgreSQL on 127.0.0.1:5432 (TEST_PG_DSN, as for the tests).
"""

import argparse
import asyncio
import json
import logging
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queue
from db.blob_refs import put_photo
from db.blobs import LocalBlobStore
from db.engine import make_engine, make_sessionmaker
from db.migrate import upgrade
from db.models import PredictionRequest
from playground.botapi import BotAPIEmulator, BotAPIServer, BotCall
from tests.make_fixture_archive import build

ROOT = Path(__file__).resolve().parents[1]
FER2013_ZIP = Path(os.environ.get("FER2013_ZIP", ROOT.parent / "shared" / "data" / "fer2013.zip"))
PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _crop() -> bytes:
    """A 48×48 face of the tests' fixture archive (FER2013 when at hand, synthetic otherwise)."""
    with tempfile.TemporaryDirectory() as folder:
        archive = build(Path(folder) / "fer_small.zip", FER2013_ZIP)
        with zipfile.ZipFile(archive) as z:
            return z.read(min(n for n in z.namelist() if n.startswith("train/happy/")))


PHOTOS = {
    # 1280×960 photos built from public-domain portraits (tests/data/faces/make_photos.py).
    "photo": lambda: (ROOT / "tests" / "data" / "faces" / "group_one.jpg").read_bytes(),
    "group": lambda: (ROOT / "tests" / "data" / "faces" / "group_three.jpg").read_bytes(),
    # A 48×48 face crop: classified whole, so the model and the queue dominate.
    "crop": _crop,
}
MODEL_BATCHES = (1, 8, 32, 64)
DRAIN_TIMEOUT_S = 120.0


def model_speed(path: Path, seconds: float) -> dict[str, float]:
    """Faces per second of one `predict` call per batch, after a warm-up call per size."""
    from ml.inference import Classifier

    classifier = Classifier.load(path)
    faces = np.random.default_rng(0).integers(0, 256, (max(MODEL_BATCHES), 48, 48), np.uint8)
    speeds = {}
    for size in MODEL_BATCHES:
        batch = faces[:size]
        classifier.predict(batch)
        calls, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            classifier.predict(batch)
            calls += 1
        speeds[str(size)] = round(calls * size / elapsed, 1)
    return speeds


class TimedEmulator(BotAPIEmulator):
    """The fake Bot API, noting when each chat's first reply arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.observe(self._stamp)
        self.replied_at: dict[int, float] = {}

    def _stamp(self, call: BotCall) -> None:
        if call.is_message and call.chat_id is not None:
            self.replied_at.setdefault(call.chat_id, time.perf_counter())


@dataclass
class Bench:
    emulator: TimedEmulator
    sessions: async_sessionmaker[AsyncSession]
    blobs: LocalBlobStore
    photos: dict[str, bytes]  # by kind
    env: dict[str, str]
    next_chat: int = 1


@asynccontextmanager
async def environment(photos: list[str], shipped: Path, log_level: str) -> AsyncIterator[Bench]:
    """A fresh database, a local blob store holding the photos, and the fake Bot API."""
    name = f"emobot_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    url = f"{base}/{name}"
    engine = make_engine(url)
    emulator = TimedEmulator()
    try:
        await upgrade(engine)
        with tempfile.TemporaryDirectory() as tmp:
            async with (
                LocalBlobStore(Path(tmp) / "blobs") as blobs,
                BotAPIServer(emulator) as server,
            ):
                data = {kind: PHOTOS[kind]() for kind in photos}
                env = {
                    "DATABASE_URL": url,
                    "BLOB_STORE_URL": f"file://{Path(tmp) / 'blobs'}",
                    "DATA_DIR": str(Path(tmp) / "var"),
                    "BOT_TOKEN": "1:bench",
                    "TELEGRAM_API_URL": server.url,
                    "MODEL_PATH": str(shipped),
                    "LOG_LEVEL": log_level,
                }
                yield Bench(emulator, make_sessionmaker(engine), blobs, data, env)
    finally:
        await engine.dispose()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def _enqueue(bench: Bench, kind: str, count: int) -> list[tuple[int, float]]:
    """`count` requests in one transaction; (chat id, enqueue time) each."""
    chats = list(range(bench.next_chat, bench.next_chat + count))
    bench.next_chat += count
    at = time.perf_counter()
    async with bench.sessions.begin() as session:
        # Stored with each transaction, as the bot stores each photo: the worker lets a photo
        # go once its requests are answered (PREDICTION_RETENTION_HOURS 0).
        _, key = await put_photo(session, bench.blobs, bench.photos[kind])
        if count == 1:
            await queue.enqueue(session, chat_id=chats[0], user_id=None, message_id=1, blob_key=key)
        else:
            rows = [{"chat_id": c, "message_id": 1, "blob_key": key} for c in chats]
            await session.execute(insert(PredictionRequest), rows)
    return [(c, at) for c in chats]


async def _drain(bench: Bench, chats: list[int]) -> None:
    deadline = time.perf_counter() + DRAIN_TIMEOUT_S
    while time.perf_counter() < deadline:
        if all(c in bench.emulator.replied_at for c in chats):
            return
        await asyncio.sleep(0.02)


async def load_run(
    bench: Bench, kind: str, rate: float | None, seconds: float, burst: int
) -> dict[str, Any]:
    """Enqueue at `rate` per second for `seconds` (each request its own transaction, as the
    bot does), or `burst` requests at once when `rate` is None; wait for every reply."""
    sent: list[tuple[int, float]] = []
    started = time.perf_counter()
    if rate is None:
        sent = await _enqueue(bench, kind, burst)
    else:
        for i in range(round(rate * seconds)):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            sent += await _enqueue(bench, kind, 1)
    chats = [c for c, _ in sent]
    await _drain(bench, chats)
    replied = bench.emulator.replied_at
    latencies = sorted(replied[c] - at for c, at in sent if c in replied)
    last = max((replied[c] for c in chats if c in replied), default=started)
    counts = Counter(call.chat_id for call in bench.emulator.calls if call.chat_id in set(chats))
    async with bench.sessions() as session:
        batches = [
            t["batch"]
            for t in await session.scalars(
                select(PredictionRequest.timings).where(PredictionRequest.chat_id.in_(chats))
            )
            if t
        ]
    return {
        "requests": len(chats),
        "throughput": round(len(latencies) / max(last - started, 1e-9), 1),
        "p50_ms": round(1000 * latencies[len(latencies) // 2]) if latencies else None,
        "p95_ms": round(1000 * latencies[int(len(latencies) * 0.95)]) if latencies else None,
        "mean_batch": round(statistics.fmean(batches), 1) if batches else None,
        "lost": len(chats) - len(latencies),
        "duplicates": sum(n - 1 for n in counts.values() if n > 1),
    }


async def worker_runs(
    photos: list[str],
    shipped: Path,
    rates: list[float],
    seconds: float,
    burst: int,
    log_level: str,
) -> list[dict[str, Any]]:
    runs = []
    async with environment(photos, shipped, log_level) as bench:
        for batching in (True, False):
            env = {
                **os.environ,
                **bench.env,
                "BATCH_SIZE": "32" if batching else "1",
                "BATCH_WAIT_MS": "50" if batching else "0",
            }
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cli", "worker", cwd=ROOT, env=env
            )
            try:
                # The model is loaded when this is answered.
                warm = await _enqueue(bench, photos[0], 1)
                await _drain(bench, [warm[0][0]])
                for kind in photos:
                    for rate in [*rates, None]:
                        run = await load_run(bench, kind, rate, seconds, burst)
                        run = {
                            "rate": rate if rate is not None else "burst",
                            "batching": batching,
                            "photo": kind,
                            **run,
                        }
                        print(_row(run), flush=True)
                        runs.append(run)
            finally:
                process.send_signal(signal.SIGTERM)
                await process.wait()
    return runs


def _row(run: dict[str, Any]) -> str:
    return (
        f"{run['photo']:>5} {run['rate']!s:>6} {'on' if run['batching'] else 'off':>8} "
        f"{run['requests']:>8} "
        f"{run['throughput']:>10} {run['p50_ms']!s:>7} {run['p95_ms']!s:>7} "
        f"{run['mean_batch']!s:>6} {run['lost']:>4} {run['duplicates']:>4}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--seconds", type=float, default=10.0, help="per rate (default 10)")
    parser.add_argument("--burst", type=int, default=300, help="requests enqueued at once")
    parser.add_argument("--rates", default="5,20,50", help="requests per second (5,20,50)")
    parser.add_argument(
        "--photo",
        choices=[*sorted(PHOTOS), "all"],
        default="all",
        help="what each request carries (default: all, one after the other)",
    )
    parser.add_argument("--model-seconds", type=float, default=3.0, help="per batch size")
    parser.add_argument("--model", type=Path, help="model file (default: the shipped one)")
    parser.add_argument(
        "--worker-log",
        default="WARNING",
        choices=["INFO", "WARNING"],
        help="the worker's log level (INFO: one line per batch with ms per stage)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from ml.inference import shipped_model_path

    shipped = args.model or shipped_model_path()
    print(f"model {shipped}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    speeds = model_speed(shipped, args.model_seconds)
    print("model faces/s by batch size: " + ", ".join(f"{b}: {s}" for b, s in speeds.items()))
    print("photo   rate batching requests throughput p50_ms p95_ms batch lost dups")
    photos = list(PHOTOS) if args.photo == "all" else [args.photo]
    rates = [int(r) if float(r).is_integer() else float(r) for r in args.rates.split(",") if r]
    runs = asyncio.run(
        worker_runs(photos, shipped, rates, args.seconds, args.burst, args.worker_log)
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "model_faces_per_s": speeds,
            "runs": runs,
            "seconds_per_rate": args.seconds,
            "cpus": os.cpu_count(),
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
