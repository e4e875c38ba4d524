"""How fast the worker answers clips, and whether photos keep their pace meanwhile.

The worker runs as in production (`python -m cli worker`, its own process, the shipped model)
against a fresh PostgreSQL database, a local blob store and the fake Bot API
(benchmarks/worker.py's environment). The clip is a 60 s round video note, 480×480 at 30 fps,
H.264, built from the public-domain test faces (tests/clips.py: the face changes every second).

1. `clip`: clips enqueued one at a time, the worker otherwise idle; the time from the claim
   (`started_at`) to the answer being recorded (`replied_at`), both by PostgreSQL's clock, and
   the analysis time the worker stored.
2. `mixed`: photos (1280×960, one face) enqueued at `--rate` per second for `--seconds` while a
   clip arrives every `--clip-every` seconds; photo latency (enqueue → the Bot API receiving
   the reply), clip latency, answers lost or sent twice.

    .venv/bin/python -m benchmarks.video [--json PATH] [--clips 3] [--seconds 30] [--rate 10]
        [--clip-every 5]

Needs PostgreSQL on 127.0.0.1:5432 (TEST_PG_DSN, as for the tests). The machine's load average
is printed with the numbers: on a shared machine they say as much about the neighbours.
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from benchmarks.worker import ROOT, Bench, _drain, _enqueue, environment
from db import queue
from db.blob_refs import put_photo
from db.models import PredictionRequest
from tests.clips import make_clip

# The face changes every second: 30 times happy, 30 times neutral.
NOTE_SECONDS = ["happy", "neutral"] * 30


async def enqueue_clip(bench: Bench, data: bytes) -> tuple[int, float]:
    chat = bench.next_chat
    bench.next_chat += 1
    at = time.perf_counter()
    async with bench.sessions.begin() as session:
        _, key = await put_photo(session, bench.blobs, data, "video/mp4")
        await queue.enqueue(
            session, chat_id=chat, user_id=None, message_id=1, blob_key=key, kind="video"
        )
    return chat, at


async def claim_to_answer(bench: Bench, chats: list[int]) -> list[dict[str, Any]]:
    # The answer is recorded just after the Bot API received it.
    for _ in range(100):
        async with bench.sessions() as session:
            recorded = await session.scalar(
                select(func.count()).where(
                    PredictionRequest.chat_id.in_(chats), PredictionRequest.replied_at.is_not(None)
                )
            )
        if recorded == len(chats):
            break
        await asyncio.sleep(0.05)
    async with bench.sessions() as session:
        rows = await session.execute(
            select(
                PredictionRequest.chat_id,
                PredictionRequest.started_at,
                PredictionRequest.replied_at,
                PredictionRequest.result,
            ).where(PredictionRequest.chat_id.in_(chats))
        )
        out = []
        for chat, started, replied, result in rows:
            out.append(
                {
                    "chat": chat,
                    "claim_to_answer_s": round((replied - started).total_seconds(), 2)
                    if started and replied
                    else None,
                    "analysis_ms": (result or {}).get("analysis_ms"),
                    "analysis_cpu_ms": (result or {}).get("cpu_ms"),
                    "process_cpu_ms": (result or {}).get("process_cpu_ms"),
                    "frames": len((result or {}).get("frames", [])),
                }
            )
        return out


async def clip_runs(bench: Bench, clip: bytes, count: int) -> list[dict[str, Any]]:
    runs = []
    for _ in range(count):
        chat, _at = await enqueue_clip(bench, clip)
        await _drain(bench, [chat])
        [run] = await claim_to_answer(bench, [chat])
        print(
            f"clip alone: claim → answer {run['claim_to_answer_s']} s "
            f"(analysis {run['analysis_ms']} ms; CPU: its thread {run['analysis_cpu_ms']} ms, "
            f"the process {run['process_cpu_ms']} ms; "
            f"{run['frames']} frames), "
            f"load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        runs.append(run)
    return runs


async def mixed_run(
    bench: Bench, clip: bytes | None, rate: float, seconds: float, clip_every: float
) -> dict[str, Any]:
    """Photos at `rate` for `seconds`, a clip every `clip_every` s (none: photos alone)."""
    photos: list[tuple[int, float]] = []
    clips: list[tuple[int, float]] = []
    started = time.perf_counter()
    next_clip = started
    for i in range(round(rate * seconds)):
        now = time.perf_counter()
        if clip is not None and now >= next_clip:
            clips.append(await enqueue_clip(bench, clip))
            next_clip += clip_every
        await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        photos += await _enqueue(bench, "photo", 1)
    load = os.getloadavg()
    await _drain(bench, [c for c, _ in photos + clips])
    replied = bench.emulator.replied_at

    def latencies(sent: list[tuple[int, float]]) -> list[float]:
        return sorted(replied[c] - at for c, at in sent if c in replied)

    def pct(values: list[float], q: float) -> int | None:
        return round(1000 * values[min(len(values) - 1, int(len(values) * q))]) if values else None

    chats = {c for c, _ in photos + clips}
    counts = Counter(
        call.chat_id for call in bench.emulator.calls if call.is_message and call.chat_id in chats
    )
    photo_lat, clip_lat = latencies(photos), latencies(clips)
    return {
        "photos": len(photos),
        "clips": len(clips),
        "photo_p50_ms": pct(photo_lat, 0.5),
        "photo_p95_ms": pct(photo_lat, 0.95),
        "photo_max_ms": pct(photo_lat, 1.0),
        "clip_p50_ms": pct(clip_lat, 0.5),
        "clip_max_ms": pct(clip_lat, 1.0),
        "clip_claim_to_answer_s": [
            r["claim_to_answer_s"] for r in await claim_to_answer(bench, [c for c, _ in clips])
        ],
        "lost": len(chats) - len(photo_lat) - len(clip_lat),
        "duplicates": sum(n - 1 for n in counts.values() if n > 1),
        "load_average_1m": round(load[0], 2),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from ml.inference import shipped_model_path

    started = time.perf_counter()
    clip = make_clip(NOTE_SECONDS, kind="note", fps=30, size=(480, 480))
    print(f"video note: {len(clip) / 2**20:.1f} MB, built in {time.perf_counter() - started:.1f} s")
    async with environment(["photo"], shipped_model_path(), "WARNING") as bench:
        env = {**os.environ, **bench.env}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli", "worker", cwd=ROOT, env=env
        )
        try:
            warm = await _enqueue(bench, "photo", 1)  # the model is loaded once this is answered
            await _drain(bench, [warm[0][0]])
            await clip_runs(bench, clip, 1)  # warm-up: the chart's first drawing loads matplotlib
            alone = await clip_runs(bench, clip, args.clips)
            baseline = await mixed_run(bench, None, args.rate, args.seconds, args.clip_every)
            print(_mixed_line("photos alone", baseline, args.rate), flush=True)
            mixed = await mixed_run(bench, clip, args.rate, args.seconds, args.clip_every)
            print(_mixed_line("with clips", mixed, args.rate), flush=True)
            memory = worker_memory(process.pid)
            print(f"worker memory: {memory}", flush=True)
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()
    return {
        "clip_alone": alone,
        "photos_alone": baseline,
        "mixed": mixed,
        "worker_memory_mb": memory,
        "cpus": os.cpu_count(),
    }


def worker_memory(pid: int) -> dict[str, float]:
    """The worker's resident memory now and at its peak (MB), from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[{"VmRSS": "rss", "VmHWM": "peak"}[name]] = round(int(value.split()[0]) / 1024)
    return fields


def _mixed_line(name: str, run: dict[str, Any], rate: float) -> str:
    return (
        f"{name}: {run['photos']} photos at {rate}/s, {run['clips']} clips: photo p50 "
        f"{run['photo_p50_ms']} ms, p95 {run['photo_p95_ms']} ms, max {run['photo_max_ms']} ms; "
        f"clip p50 {run['clip_p50_ms']} ms; lost {run['lost']}, sent twice "
        f"{run['duplicates']}; load {run['load_average_1m']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--clips", type=int, default=3, help="clips measured alone (3)")
    parser.add_argument("--seconds", type=float, default=30.0, help="of the mixed load (30)")
    parser.add_argument("--rate", type=float, default=10.0, help="photos per second (10)")
    parser.add_argument("--clip-every", type=float, default=5.0, help="seconds between clips")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(run(args))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result["args"] = {k: str(v) for k, v in vars(args).items()}
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
