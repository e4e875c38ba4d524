"""The prediction worker: claims queued requests in micro-batches, finds the faces, runs every
face of the batch through the model in one call, stores the results and replies.

A batch is up to `batch_size` requests, or whatever arrived within `batch_wait_ms` of the first
one. Blobs are fetched concurrently; decoding, face detection, the model and drawing run in
threads, so the event loop keeps listening and replying. `stop()` (SIGTERM) lets the batch in
hand finish and gives back requests claimed for a batch that has not started.
"""

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import numpy as np
from aiogram import Bot
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession

import runtime.serving
from db import queue
from db.blobs import BlobNotFound
from db.engine import Storage
from db.notify import LISTEN_ERRORS, listen
from db.queue import Claimed
from emobot.i18n import t
from emobot.labels import CLASSES
from emobot.settings import Settings
from ml.faces import Face, ImageError, UnusableShape, decode_image, whole_face
from ml.upright import turned, upright_faces
from runtime.serving import Serving
from worker import metrics
from worker.models import ModelHolder
from worker.outage import DATABASE_ERRORS, DatabaseWatch, Stopping
from worker.policy import Action, Problem, decide
from worker.replies import Flooded, Reply, SendFailed, Undeliverable, compose_reply, send_reply
from worker.retention import Purger

log = logging.getLogger("worker")

# How long a stopping worker waits for its background tasks (a purge) once cancelled.
BACKGROUND_STOP_SECONDS = 2.0
T = TypeVar("T")

# How many times per LEASE_SECONDS a batch's lease is renewed (a heartbeat).
LEASE_RENEWALS = 6
# A request that failed for a passing reason (storage or Telegram unreachable) waits this long
# per attempt made before it is claimed again.
RETRY_DELAY_S = 2.0


def worker_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(eq=False)  # jobs are compared by identity (they hold arrays)
class Job:
    """One request on its way through a batch."""

    request: Claimed
    lang: str
    data: bytes | None = None
    image: np.ndarray | None = None
    faces: list[Face] = field(default_factory=list)
    turn: int = 0  # degrees clockwise the photo was turned to find its faces upright
    result: dict[str, Any] | None = None
    failure: str | None = None  # a permanent problem with the photo: told to the user, not retried
    failure_text: str = "unreadable"  # what the user is told about it
    retry: str | None = None  # a passing problem: the request goes back to the queue
    flood_wait: int | None = None  # seconds Telegram's flood control asked this chat to wait

    @property
    def fresh(self) -> bool:
        """Still needs the model (an earlier attempt may have stored its result already)."""
        return self.result is None and self.failure is None and self.retry is None


class Worker:
    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        bot: Bot,
        models: ModelHolder | None = None,
        *,
        name: str | None = None,
    ):
        self.settings = settings
        self.storage = storage
        self.bot = bot
        self.models = models or ModelHolder(settings, storage)
        self.name = name or worker_name()
        self.batches = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.database = DatabaseWatch(storage.engine, self._stopping)
        self._claims_unsure = False  # a claim failed: it may have taken rows all the same
        self._floods: dict[int, float] = {}  # chat id -> time.monotonic() its flood wait ends
        self._keeper: asyncio.Task[None] | None = None  # renews the lease of the batch claimed
        self._replies = ReplyLog(self._db)
        # Decoding and detection release the GIL in their heavy parts (Pillow, OpenCV, LiteRT):
        # one thread per core keeps every core busy without the threads crowding each other.
        self._detection = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="detect")
        self.purger = Purger(settings, storage)

    def stop(self) -> None:
        """Finish the batch in hand, then return (safe to call from a signal handler)."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        if self.models.current is None:
            try:  # the registry says which model: a database still starting is waited for
                await self.database.run(self.models.load)
            except Stopping:
                self.database.close()
                return
        metrics.MODEL_VERSION.set(self.models.model.version or 0)
        self._background.add(asyncio.create_task(self.purger.run()))
        try:
            await self._listen()
            while not self._stopping.is_set():
                if self.models.swap():
                    log.info("%s: now answering with %s", self.name, self.models.model.name)
                    metrics.MODEL_VERSION.set(self.models.model.version or 0)
                try:
                    await self.database.settle()
                    if self._claims_unsure:
                        await self._release_lost_claims()
                    batch = await self._collect()
                    if batch:
                        await self.process(batch)
                except Stopping:
                    break
                except DATABASE_ERRORS as exc:
                    # PostgreSQL or the network went away: wait until it answers (steps of a
                    # batch wait out an outage themselves; this is a claim that failed).
                    metrics.ERRORS.inc()
                    self._claims_unsure = True
                    try:
                        outage = await self.database.wait(exc)
                    except Stopping:
                        break
                    if not outage:  # it answers: something else failed; do not spin
                        log.error(
                            "%s: %r; retrying in %s s", self.name, exc, self.settings.poll_seconds
                        )
                        await self._sleep(self.settings.poll_seconds)
                    await self._relisten()
                    continue
                if not batch:
                    await self._sleep(await self._idle_seconds())
                    await self._relisten()
        finally:
            if self._keeper is not None:
                self._keeper.cancel()
            self.database.close()
            for task in self._background:
                task.cancel()
            # Before the storage closes under them: a purge cut short here is done by the next
            # round of any worker (its rows still say which photos to let go).
            if self._background:
                await asyncio.wait(self._background, timeout=BACKGROUND_STOP_SECONDS)
            if self._listener is not None:
                await self._listener.close()
            self._detection.shutdown(wait=False, cancel_futures=True)

    # Waking up --------------------------------------------------------------------------

    async def _listen(self) -> None:
        """LISTEN for new requests and promotions; without it the worker polls."""
        try:
            self._listener = await listen(
                self.storage.engine,
                {"prediction_requests": self._on_request, "models": self._on_model},
            )
        except LISTEN_ERRORS as exc:
            log.warning(
                "%s: LISTEN failed (%s); polling every %s s",
                self.name,
                exc,
                self.settings.poll_seconds,
            )
            self._listener = None
            return
        # A lost connection (the database restarted) wakes the worker: its next claim finds
        # out, and it listens again once PostgreSQL is back.
        self._listener.add_termination_listener(lambda _: self._wake.set())
        # A promotion may have happened while nobody listened.
        self._on_model()

    async def _relisten(self) -> None:
        if self._listener is None or self._listener.is_closed():
            await self._listen()

    def _on_request(self, *_: object) -> None:
        self._wake.set()

    def _on_model(self, *_: object) -> None:
        task = asyncio.get_running_loop().create_task(self._refresh_model())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh_model(self) -> None:
        try:
            await self.models.refresh()
        except DATABASE_ERRORS as exc:  # the next LISTEN (after the outage) looks again
            log.warning("%s: could not look for a promoted model: %r", self.name, exc)
            return
        self._wake.set()  # an idle worker swaps it in now rather than at the next poll

    async def _idle_seconds(self) -> float:
        """How long to wait for a NOTIFY: no new request announces that a dead worker's lease
        (or a retry's delay) ran out, so wake when the soonest one does."""
        try:
            async with self.storage.sessions() as session:
                due = await queue.next_claimable_in(session)
        except DATABASE_ERRORS:
            due = None  # the next claim says what is wrong
        if due is None:
            return self.settings.poll_seconds
        # A little after it: the lease must have run out by the database's clock.
        return min(self.settings.poll_seconds, max(due, 0.0) + 0.05)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    # Claiming a batch --------------------------------------------------------------------

    async def _db(self, step: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `step` in a transaction of its own; while PostgreSQL is unreachable, wait for it
        and run it again (the steps are idempotent: a commit whose outcome was lost is
        harmless to repeat)."""

        async def once() -> T:
            async with self.storage.sessions.begin() as session:
                return await step(session)

        return await self.database.run(once)

    async def _release_lost_claims(self) -> None:
        """A claim failed: if its commit went through all the same (the answer was lost), the
        rows it took would wait for their lease with an attempt counted. Between batches this
        worker holds nothing, so whatever is still locked by it goes back to the queue."""
        released = await self._db(lambda s: queue.release(s, worker=self.name, ids=None))
        self._claims_unsure = False
        if released:
            log.info("%s: gave back %d requests claimed by a lost commit", self.name, released)

    async def _claim(self, limit: int) -> list[Claimed]:
        async with self.storage.sessions.begin() as session:
            return await queue.claim(
                session, worker=self.name, limit=limit, lease_s=self.settings.lease_seconds
            )

    async def _collect(self) -> list[Claimed]:
        """Up to batch_size requests: what is queued now, plus what arrives within
        batch_wait_ms of the first."""
        size = self.settings.batch_size
        self._wake.clear()
        batch = await self._claim(size)
        if not batch:
            return []
        # Renewed from the first claim on: the wait for more must not let it run out.
        leased = [c.id for c in batch]
        self._keeper = asyncio.create_task(self._keep_lease(leased))
        deadline = time.monotonic() + self.settings.batch_wait_ms / 1000
        while len(batch) < size and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await self._sleep(remaining)
            self._wake.clear()
            try:
                more = await self._claim(size - len(batch))
                batch += more
                leased += [c.id for c in more]
            except DATABASE_ERRORS:
                self._claims_unsure = True
                break  # work on what is in hand; its steps wait out the outage
        if self._stopping.is_set():
            self._keeper.cancel()
            self._keeper = None
            try:
                async with self.storage.sessions.begin() as session:
                    released = await queue.release(
                        session, worker=self.name, ids=[c.id for c in batch]
                    )
            except DATABASE_ERRORS as exc:  # their lease runs out instead
                log.warning("%s: stopping; could not give back the batch: %r", self.name, exc)
                return []
            log.info("%s: stopping; gave back %d claimed requests", self.name, released)
            return []
        return batch

    # Working a batch ---------------------------------------------------------------------

    async def process(self, batch: list[Claimed]) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is None:  # not claimed by _collect
            keeper = asyncio.create_task(self._keep_lease([c.id for c in batch]))
        try:
            await self._process(batch)
        finally:
            keeper.cancel()

    async def _keep_lease(self, ids: list[int]) -> None:
        """Renew the batch's lease every LEASE_RENEWALS-th of it until the batch is done:
        without this, a batch slower than the lease would be claimed and answered by a second
        worker too. Renewing often lets the lease be short, so a killed worker's requests are
        claimed again soon (within LEASE_SECONDS), while a live worker would have to miss
        LEASE_RENEWALS renewals in a row to lose its batch."""
        lease = self.settings.lease_seconds
        while True:
            await asyncio.sleep(lease / LEASE_RENEWALS)
            try:
                async with self.storage.sessions.begin() as session:
                    await queue.extend_lease(session, worker=self.name, ids=ids, lease_s=lease)
            except DATABASE_ERRORS as exc:
                # The next renewal may work; if none does, the lease runs out as for a dead
                # worker. (During an outage the batch's own steps take its rows back after it.)
                if self.database.up:
                    log.warning("%s: renewing the lease failed: %r", self.name, exc)

    async def _process(self, batch: list[Claimed]) -> None:
        started = time.perf_counter()
        marks: dict[str, float] = {}

        def mark(stage: str, since: float) -> float:
            now = time.perf_counter()
            marks[stage] = round((now - since) * 1000, 1)
            return now

        jobs = [Job(c, c.language, result=c.result) for c in batch]
        over = [j for j in jobs if j.request.attempts > self.settings.max_attempts]
        work = [j for j in jobs if j not in over]
        await asyncio.gather(*(self._fetch(j) for j in work))
        t = mark("fetch", started)
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._detection, self._prepare, j) for j in work if j.data)
        )
        t = mark("detect", t)
        classifier = self.models.model  # one model for the whole batch, even if one is promoted
        fresh = [j for j in work if j.fresh]
        crops = [face.crop for j in fresh for face in j.faces]
        try:
            probs = (
                await asyncio.to_thread(classifier.predict, np.stack(crops))
                if crops
                else np.zeros((0, len(CLASSES)), np.float32)
            )
        except Exception as exc:
            log.exception("%s: the model failed", self.name)
            for j in fresh:
                j.retry = f"model failed: {exc}"
        else:
            start = 0
            for j in fresh:
                j.result = _result(j, probs[start : start + len(j.faces)])
                start += len(j.faces)
        t = mark("model", t)

        timings = {**marks, "batch": len(batch), "faces": len(crops)}
        now = datetime.now(UTC)
        to_save = {
            j.request.id: (
                j.result,
                classifier.version,
                {**timings, "wait_ms": round((now - j.request.created_at).total_seconds() * 1000)},
            )
            for j in fresh
            if j.result is not None
        }

        async def save(session: AsyncSession) -> set[int]:
            # Saving renews the lease: after an outage this takes back the rows that nobody
            # claimed meanwhile; the others are no longer ours to answer.
            held = await queue.save_results(
                session, worker=self.name, lease_s=self.settings.lease_seconds, results=to_save
            )
            # The others (failures, retries, results of earlier attempts): still ours?
            return held | await queue.still_held(
                session,
                worker=self.name,
                ids=[j.request.id for j in jobs if j.request.id not in to_save],
            )

        held = await self._db(save)
        t = mark("save", t)
        answers = await asyncio.gather(
            *(self._answer(j, j in over) for j in jobs if j.request.id in held),
            return_exceptions=True,
        )
        for outcome in answers:
            if isinstance(outcome, BaseException):
                raise outcome
        mark("reply", t)
        self.purger.batch_answered()
        self.batches += 1
        metrics.observe_batch(len(batch), marks, (len(j.faces) for j in fresh if j.result))
        log.info(
            "%s: batch %d: %d requests, %d faces, model %s | fetch %s ms, detect %s ms, "
            "model %s ms, save %s ms, reply %s ms, total %.1f ms",
            self.name,
            self.batches,
            len(batch),
            len(crops),
            classifier.version or "file",
            marks["fetch"],
            marks["detect"],
            marks["model"],
            marks["save"],
            marks["reply"],
            (time.perf_counter() - started) * 1000,
        )

    async def _fetch(self, job: Job) -> None:
        try:
            job.data = await self.storage.blobs.get(job.request.blob_key)
        except BlobNotFound:
            job.failure = f"photo missing from the blob store: {job.request.blob_key}"
        except Exception as exc:  # the store is unreachable: try again later
            job.retry = f"blob store: {exc!r}"

    def _prepare(self, job: Job) -> None:
        """In a thread: decode the photo and find its faces (a result stored by an earlier
        attempt needs only the photo, to draw its boxes on)."""
        assert job.data is not None
        try:
            job.image = decode_image(job.data, self.settings.max_photo_pixels)
        except UnusableShape as exc:
            job.failure, job.failure_text = f"unusable photo: {exc}", "unusable"
            return
        except ImageError as exc:
            job.failure = f"unreadable photo: {exc}"
            return
        except Exception as exc:  # not the photo's fault as far as we know: try again
            job.retry = f"decoding failed: {exc!r}"
            return
        finally:
            job.data = None
        if job.result is not None:
            # Its boxes are in the photo as it was turned upright.
            job.image = turned(job.image, job.result.get("turn", 0))
            return
        try:
            if job.request.whole:
                job.faces = [whole_face(job.image)]
            else:  # a photo sent sideways or upside down is answered as if upright
                job.faces, job.image, job.turn = upright_faces(job.image)
        except Exception as exc:
            job.retry = f"face detection failed: {exc!r}"

    async def _answer(self, job: Job, over: bool) -> None:
        request = job.request
        last_try = request.attempts >= self.settings.max_attempts
        counted = True  # whether this attempt counts (see DEFER)
        if over:
            problem, detail = Problem.OVER_ATTEMPTS, None
        elif job.retry is not None:
            problem, detail = Problem.PASSING, job.retry
        elif job.failure is not None:
            problem, detail = Problem.PHOTO, job.failure
        elif (wait := self._flood_wait(request.chat_id)) is not None:
            # An earlier send to this chat was told to wait: do not knock again before then.
            # Nothing was tried, so the attempt is not counted.
            job.flood_wait, counted, last_try = wait, False, False
            problem, detail = Problem.FLOODED, f"flood control: the chat waits {wait} s"
        else:
            problem, detail = await self._send_answer(job)
        if job.flood_wait is not None and job.flood_wait > self.settings.flood_wait_max_seconds:
            last_try = True  # longer than an answer is worth waiting for
        decision = decide(problem, last_try, job.failure_text)
        answered_nothing = decision.action is Action.REPLY and not (job.result or {})["faces"]
        metrics.REQUESTS.labels("no_face" if answered_nothing else decision.outcome).inc()
        match decision.action:
            case Action.REPLY:
                await self._answered(job)
            case Action.RETRY:
                await self._retry(job, detail or "")
            case Action.DEFER:
                assert job.flood_wait is not None
                await self._retry(job, detail or "", delay_s=job.flood_wait, counted=counted)
            case Action.FAIL:
                if decision.outcome == "gave_up":
                    given_up = f"gave up after {self.settings.max_attempts} attempts"
                    detail = f"{given_up}; last: {detail}" if detail else given_up
                assert decision.text is not None
                await self._fail(job, detail or "", Reply(t(job.lang, f"worker.{decision.text}")))
            case Action.DROP:
                await self._mark_failed(request.id, detail or "", replied=False)

    async def _send_answer(self, job: Job) -> tuple[Problem | None, str | None]:
        """Send the job's answer; the problem sending it, if any."""
        assert job.result is not None
        reply = await asyncio.to_thread(
            compose_reply, job.result, job.image, job.lang, self.settings.unsure_below
        )
        try:
            await send_reply(self.bot, job.request.chat_id, job.request.message_id, reply)
        except Undeliverable as exc:
            return Problem.UNDELIVERABLE, f"undeliverable: {exc}"
        except Flooded as exc:
            job.flood_wait = exc.retry_after
            self._floods[job.request.chat_id] = time.monotonic() + exc.retry_after
            return Problem.FLOODED, f"send failed: {exc}"
        except SendFailed as exc:
            return Problem.SEND_FAILED, f"send failed: {exc}"
        return None, None

    def _flood_wait(self, chat_id: int) -> int | None:
        """Whole seconds left of the chat's flood wait, if it has one."""
        now = time.monotonic()
        for chat, until in list(self._floods.items()):
            if until <= now:
                del self._floods[chat]
        until = self._floods.get(chat_id)
        return None if until is None else math.ceil(until - now)

    async def _answered(self, job: Job) -> None:
        # Recorded as soon as the send returns: the narrowest window in which a crash could
        # make another worker answer this request again (see db/queue.py).
        await self._replies.record(job.request.id)
        age = datetime.now(UTC) - job.request.created_at
        metrics.REQUEST_SECONDS.observe(age.total_seconds())

    async def _fail(self, job: Job, error: str, apology: Reply) -> None:
        log.warning("%s: request %d failed: %s", self.name, job.request.id, error)
        try:
            await send_reply(self.bot, job.request.chat_id, job.request.message_id, apology)
            replied = True
        except (Undeliverable, SendFailed) as exc:
            error += f"; the apology was not delivered: {exc}"
            replied = False
        await self._mark_failed(job.request.id, error, replied=replied)

    async def _mark_failed(self, request_id: int, error: str, *, replied: bool) -> None:
        await self._db(lambda s: queue.mark_failed(s, request_id, error, replied=replied))

    async def _retry(
        self, job: Job, error: str, *, delay_s: float | None = None, counted: bool = True
    ) -> None:
        """Back to the queue, not to be claimed for `delay_s` (by default longer after each
        attempt); `counted=False` gives the attempt back."""
        delay = RETRY_DELAY_S * job.request.attempts if delay_s is None else delay_s
        log.warning(
            "%s: request %d back to the queue for %.0f s: %s",
            self.name,
            job.request.id,
            delay,
            error,
        )
        await self._db(
            lambda s: queue.retry_later(
                s,
                worker=self.name,
                request_id=job.request.id,
                error=error,
                delay_s=delay,
                count_attempt=counted,
            )
        )


def _result(job: Job, probs: np.ndarray) -> dict[str, Any]:
    """What is stored for a request: every face's box and probabilities (CLASSES order), in
    the photo as turned upright (`turn` degrees clockwise)."""
    assert job.image is not None
    height, width = job.image.shape[:2]
    return {
        "classes": list(CLASSES),
        "width": width,
        "height": height,
        "turn": job.turn,
        "faces": [
            {"box": [int(v) for v in face.box], "probs": [round(float(p), 4) for p in row]}
            for face, row in zip(job.faces, probs, strict=True)
        ],
    }


class ReplyLog:
    """Records sent replies with as few UPDATEs as possible (group commit).

    Each send adds its request id and waits; whoever gets the lock writes every id waiting
    by then in one UPDATE. A reply is recorded by the UPDATE running when it returns or by the
    next one, instead of each reply paying for its own transaction and pool connection.
    `write` runs a step in a transaction, waiting out database outages: a reply sent while
    PostgreSQL is away is recorded as soon as it is back (before any new claim).
    """

    def __init__(
        self, write: Callable[[Callable[[AsyncSession], Awaitable[set[int]]]], Awaitable[set[int]]]
    ):
        self._write = write
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()

    async def record(self, request_id: int) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = done
        async with self._lock:
            if not done.done():
                batch, self._waiting = self._waiting, {}
                try:
                    await self._write(lambda s: queue.mark_replied(s, list(batch)))
                except Exception as exc:
                    for future in batch.values():
                        future.set_exception(exc)
                else:
                    for future in batch.values():
                        future.set_result(None)
        await done


def serve(settings: Settings) -> None:
    """Run one worker until SIGTERM or Ctrl-C (`emobot worker`)."""

    def build(storage: Storage, bot: Bot | None, stack: AsyncExitStack) -> Serving:
        assert bot is not None  # needs_bot
        worker = Worker(settings, storage, bot)
        queue_metrics = metrics.register_queue_collector(storage)
        stack.callback(REGISTRY.unregister, queue_metrics)

        async def model_loaded() -> None:
            if worker.models.current is None:
                raise RuntimeError("the model is still loading")

        return Serving(worker, {"model": model_loaded}, [queue_metrics.refresh])

    asyncio.run(runtime.serving.serve(settings, "worker", build, needs_bot=True))
