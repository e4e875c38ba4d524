"""The fault benchmark's scenarios: a burst of photos under each fault, and what the users
got (see benchmarks/faults.py)."""

import argparse
import asyncio
import contextlib
import itertools
import re
import signal
import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.emulators import Recorder
from benchmarks.processes import EmbeddedPostgres, Process, Replica, Telegram, now
from bot.keyboards import BatchCb, ConsentCb, LabelCb
from playground.botapi import BotCall, FakeUser

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT / "tests" / "data" / "faces"
USERS = 12
FAULT_AFTER_S = 2.0
TAIL_EVERY_S = 0.5
TAIL_AFTER_FAULT_S = 5.0
ALBUM = 10


def album_faces(count: int) -> list[bytes]:
    """`count` photos of one face each that /contribute accepts and that are no near-copies
    of each other: faces cut from the test photos, mirrored or half-shaded."""
    import cv2
    import numpy as np

    from bot.services.contribute import find_one_face
    from bot.services.photos import Rejected
    from ml.faces import decode_image, find_faces

    chosen: list[bytes] = []
    hashes = []
    for name in ("astronaut.jpg", "three_faces.jpg", "six_faces.jpg", "group_three.jpg"):
        data = (FACES / name).read_bytes()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        for face in find_faces(decode_image(data, 40_000_000)):
            x, y, w, h = face.box
            crop = image[max(0, y - w) : y + h + w, max(0, x - w) : x + w + w]
            shaded = crop.astype(np.float32)
            shaded[:, : shaded.shape[1] // 2] *= 0.55
            for variant in (crop, crop[:, ::-1], shaded.astype(np.uint8)):
                jpeg = cv2.imencode(".jpg", np.ascontiguousarray(variant))[1].tobytes()
                try:
                    face_hash = find_one_face(jpeg, 40_000_000)[3]
                except Rejected:
                    continue
                if any(face_hash.is_copy(other) for other in hashes):
                    continue
                hashes.append(face_hash)
                chosen.append(jpeg)
                if len(chosen) == count:
                    return chosen
    raise RuntimeError(f"only {len(chosen)} distinct faces found for an album of {count}")


@dataclass
class Run:
    """One scenario: its users, when its fault started and ended."""

    name: str
    users: list[FakeUser]
    started: float = 0.0
    fault_start: float | None = None
    fault_end: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def chats(self) -> set[int]:
        return {u.id for u in self.users}


@dataclass
class Platform:
    emulator: Recorder
    telegram: Telegram
    bots: list[Replica]
    workers: list[Process]
    postgres: EmbeddedPostgres
    http: aiohttp.ClientSession
    args: argparse.Namespace
    photo: bytes
    baseline_latency: dict[str, float] | None = None
    _user_ids: itertools.count = field(default_factory=lambda: itertools.count(100_000))

    def new_users(self, name: str, count: int) -> list[FakeUser]:
        return [
            self.emulator.user(next(self._user_ids), f"{name}{i}", language_code="en")
            for i in range(count)
        ]


Fault = Callable[[Platform, Run], Awaitable[None]]


async def send_photos(p: Platform, run: Run, order: list[FakeUser] | None = None) -> None:
    """The burst: `--photos` photos evenly over `--burst-seconds`, the users in turn (or in
    `order`, repeated); then, while the fault lasts and a little after, one photo every
    TAIL_EVERY_S."""
    users = itertools.cycle(order or run.users)
    step = p.args.burst_seconds / max(p.args.photos - 1, 1)
    for i in range(p.args.photos):
        await asyncio.sleep(max(0.0, run.started + i * step - now()))
        p.emulator.send_photo(next(users), p.photo)
    while run.fault_start is not None and (
        run.fault_end is None or now() < run.fault_end + TAIL_AFTER_FAULT_S
    ):
        p.emulator.send_photo(next(users), p.photo)
        await asyncio.sleep(TAIL_EVERY_S)


async def drain(p: Platform, run: Run, keys: list[tuple[int, int]]) -> None:
    """Until every photo is answered or `--drain-seconds` passed; then a moment for doubles."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(p.args.drain_seconds):
            while not all(k in p.emulator.answers for k in keys):
                await p.emulator._wait_change(1)
    await asyncio.sleep(3)


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values
    return {
        "p50": round(cuts[49] if len(values) > 1 else values[0], 2),
        "p95": round(cuts[94] if len(values) > 1 else values[0], 2),
        "max": round(max(values), 2),
    }


async def photo_scenario(p: Platform, name: str, fault: Fault | None) -> dict[str, Any]:
    run = Run(name, p.new_users(name, max(5, min(USERS, p.args.photos // 5))))
    run.started = now()
    sender = asyncio.create_task(send_photos(p, run))
    if fault is not None:
        await asyncio.sleep(FAULT_AFTER_S)
        run.fault_start = now()
        try:
            await fault(p, run)
        finally:
            run.fault_end = now()
    await sender
    keys = [k for k in p.emulator.photos if k[0] in run.chats]
    await drain(p, run, keys)
    return measure(p, run, keys)


def measure(p: Platform, run: Run, keys: list[tuple[int, int]]) -> dict[str, Any]:
    answers = {k: p.emulator.answers[k] for k in keys if k in p.emulator.answers}
    latencies = [answers[k][0] - p.emulator.photos[k] for k in answers]
    result: dict[str, Any] = {
        "name": run.name,
        "users": len(run.users),
        "sent": len(keys),
        "answered": len(answers),
        "lost": len(keys) - len(answers),
        "duplicates": sum(1 for times in answers.values() if len(times) > 1),
        "error_replies": sum(1 for chat, _, _ in p.emulator.errors if chat in run.chats),
        "recovery_s": None,
        "held_answer_s": None,
        "latency_s": percentiles(latencies),
        "unmatched_answers": sum(1 for chat, _ in p.emulator.unmatched if chat in run.chats),
        "error_samples": sorted({t for chat, _, t in p.emulator.errors if chat in run.chats})[:3],
    }
    if run.fault_start is not None and run.fault_end is not None:
        result["fault_s"] = round(run.fault_end - run.fault_start, 1)
        after = [t for times in answers.values() for t in times if t >= run.fault_end]
        if after:
            result["recovery_s"] = round(min(after) - run.fault_end, 2)
        held = [
            answers[k][0]
            for k in answers
            if p.emulator.photos[k] < run.fault_start and answers[k][0] > run.fault_start
        ]
        if held:
            result["held_answer_s"] = round(max(held) - run.fault_start, 2)
    result.update(run.extra)
    return result


# The faults ---------------------------------------------------------------------------------


async def db_restart(p: Platform, run: Run) -> None:
    """The outage runs from the stop to the server ready again (its crash recovery, too)."""
    await asyncio.to_thread(p.postgres.stop, "immediate")
    run.fault_start = now()
    await asyncio.sleep(p.args.db_down_seconds)
    began = now()
    await asyncio.to_thread(p.postgres.start)
    run.extra["db_start_s"] = round(now() - began, 1)


async def worker_kill(p: Platform, run: Run) -> None:
    victim = p.workers[0]
    await victim.stop(signal.SIGKILL)
    victim.start()  # Kubernetes starts it again; the fault is the kill itself
    run.extra["worker_exit_code"] = victim.exit_codes[-1]


async def bot_rolling(p: Platform, run: Run) -> None:
    codes = []
    for index, replica in enumerate(p.bots):
        # SIGTERM while it handles an update, as under load it always does: right after one
        # was delivered to it (within 5 s); then it leaves the load balancer.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while now() - p.telegram.last_delivery.get(index, 0.0) > 0.02:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
        p.telegram.live.discard(index)
        began = now()
        await replica.stop(signal.SIGTERM, grace=30)
        codes.append({"exit_code": replica.exit_codes[-1], "stop_s": round(now() - began, 1)})
        replica.start()
        await replica.ready(p.http)
        p.telegram.live.add(index)
    run.extra["replicas"] = codes


async def baseline(p: Platform) -> dict[str, Any]:
    result = await photo_scenario(p, "baseline", None)
    p.baseline_latency = result["latency_s"]
    return result


async def flood(p: Platform) -> dict[str, Any]:
    run = Run("flood", p.new_users("flood", max(5, min(USERS, p.args.photos // 5))))
    flooded = run.users[0].id
    # The flooded chat is a busy one: every fourth photo is its (the others in turn between).
    order: list[FakeUser] = []
    for i, other in enumerate(run.users[1:]):
        if i % 3 == 0:
            order.append(run.users[0])
        order.append(other)
    p.emulator.flood_chat = flooded
    try:
        run.started = now()
        await send_photos(p, run, order)
        keys = [k for k in p.emulator.photos if k[0] in run.chats]
        await drain(p, run, keys)
    finally:
        p.emulator.flood_chat = None
    result = measure(p, run, keys)

    def latency(chats: Callable[[int], bool]) -> list[float]:
        return [
            p.emulator.answers[k][0] - p.emulator.photos[k]
            for k in keys
            if chats(k[0]) and k in p.emulator.answers
        ]

    others = percentiles(latency(lambda chat: chat != flooded))
    result["flooded_chat_latency_s"] = percentiles(latency(lambda chat: chat == flooded))
    result["others_latency_s"] = others
    base = p.baseline_latency
    if base and base["p95"] is not None and others["p95"] is not None:
        result["others_delay_s"] = round(others["p95"] - base["p95"], 2)  # p95 against baseline
        result["others_delay_max_s"] = round(others["max"] - base["max"], 2)  # type: ignore[operator]
    return result


async def album_replicas(p: Platform) -> dict[str, Any]:
    """Each user: /contribute, consent, a label, then an album of 10 whose updates alternate
    between the replicas; "Done" shows how many photos the batch kept; discarded after."""
    faces = album_faces(ALBUM)
    albums = max(1, p.args.photos // ALBUM)
    run = Run("album_replicas", p.new_users("album", albums))
    run.started = now()
    outcomes = await asyncio.gather(*(one_album(p, user, faces) for user in run.users))
    sent = sum(o["sent"] for o in outcomes)
    kept = sum(o["kept"] for o in outcomes)
    refused = sum(o["refused"] for o in outcomes)
    return {
        "name": run.name,
        "users": len(run.users),
        "sent": sent,
        "answered": kept,
        "lost": sent - kept - refused,
        "duplicates": sum(o["duplicates"] for o in outcomes),
        "error_replies": sum(1 for chat, _, _ in p.emulator.errors if chat in run.chats),
        "recovery_s": None,
        "held_answer_s": None,
        "accepted_replies": sum(o["accepted"] for o in outcomes),
        "refused": refused,
        "split_albums": sum(o["split"] for o in outcomes),
        "kept_per_album": [o["kept"] for o in outcomes],
        "error_samples": sorted({t for chat, _, t in p.emulator.errors if chat in run.chats})[:3],
    }


async def one_album(p: Platform, user: FakeUser, faces: list[bytes]) -> dict[str, Any]:
    emulator = p.emulator

    def has_button(data: str) -> Callable[[BotCall], bool]:
        return lambda call: any(b.get("callback_data") == data for b in call.buttons)

    agree, label = ConsentCb(agree=True).pack(), LabelCb(label="happy").pack()
    done, discard = BatchCb(action="done").pack(), BatchCb(action="discard").pack()
    user.send_text("/contribute")
    asked = await emulator.wait_for(user.id, has_button(agree), 60)
    user.press(asked, data=agree)
    choose = await emulator.wait_for(user.id, has_button(label), 60)
    user.press(choose, data=label)
    await emulator.wait_for(user.id, lambda c: c.method == "editMessageText", 60)
    await asyncio.sleep(3)  # the setup's updates leave the throttling window meanwhile

    mark = len(emulator.calls)
    messages = user.send_album(faces)
    for i, update in enumerate(emulator.pushed[-len(messages) :]):
        p.telegram.route[update["update_id"]] = i % 2  # photos alternate between the replicas
    ids = [m["message_id"] for m in messages]

    def replies() -> dict[int, list[BotCall]]:
        found: dict[int, list[BotCall]] = {}
        for call in emulator.calls[mark:]:
            if call.chat_id != user.id or not call.is_message:
                continue
            reply = call.params.get("reply_parameters") or {}
            replied = reply.get("message_id") or call.params.get("reply_to_message_id")
            if replied in ids:
                found.setdefault(replied, []).append(call)
        return found

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(90):
            while len(replies()) < len(ids):
                await emulator._wait_change(1)
    answered = replies()
    accepted = [c for calls in answered.values() for c in calls if has_button(done)(c)]
    kept = 0
    if accepted:
        user.press(accepted[-1], data=done)
        summary = await emulator.wait_for(user.id, has_button(discard), 60)
        kept = int(re.findall(r"\d+", summary.text or "0")[0])
        user.press(summary, data=discard)
        await emulator.wait_for(user.id, lambda c: c.method == "editMessageText", 60)
    routed = {
        p.telegram.delivered.get(u["update_id"], [None])[0]
        for u in emulator.pushed
        if u.get("message", {}).get("chat", {}).get("id") == user.id
        and u["message"].get("message_id") in ids
    }
    return {
        "sent": len(ids),
        "accepted": len(accepted),
        "refused": sum(
            1 for calls in answered.values() if calls and not any(map(has_button(done), calls))
        ),
        "duplicates": sum(1 for calls in answered.values() if len(calls) > 1),
        "kept": kept,
        "split": len(routed - {None}) > 1,
    }


FAULTS: dict[str, Fault] = {
    "db_restart": db_restart,
    "worker_kill": worker_kill,
    "bot_rolling": bot_rolling,
}


async def run_scenario(p: Platform, name: str) -> dict[str, Any]:
    if name == "baseline":
        return await baseline(p)
    if name == "flood":
        return await flood(p)
    if name == "album_replicas":
        return await album_replicas(p)
    return await photo_scenario(p, name, FAULTS[name])
