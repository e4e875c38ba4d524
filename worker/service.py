"""The prediction worker: claims queued requests in micro-batches, finds the faces, runs every
face of the batch through the model in one call, stores the results and replies.

A batch is up to `batch_size` requests, or whatever arrived within `batch_wait_ms` of the first
one. Blobs are fetched concurrently; decoding, face detection, the model and drawing run in
threads, so the event loop keeps listening and replying. `stop()` (SIGTERM) lets the batch in
hand finish and gives back requests claimed for a batch that has not started.

Here: waking up and claiming (Worker). The batch pipeline is worker/batch.py, what is done with
each request's answer worker/answers.py, the group commit of sent replies worker/reply_log.py,
the process around it all worker/app.py.
"""

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import asyncpg

from db import queue
from db.engine import Storage
from db.notify import LISTEN_ERRORS, listen
from db.queue import Claimed
from emobot.settings import Settings
from runtime.botclient import BotClient
from worker import metrics
from worker.batch import Batches
from worker.clips import ClipLane
from worker.models import ModelHolder
from worker.outage import DATABASE_ERRORS, DatabaseWatch, Stopping
from worker.reply_log import ReplyLog
from worker.retention import Purger

log = logging.getLogger("worker")

# How long a stopping worker waits for its background tasks (a purge) once cancelled.
BACKGROUND_STOP_SECONDS = 2.0


def worker_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker(Batches):
    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        bot: BotClient,
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
        self.clips = ClipLane(self)

    def stop(self) -> None:
        """Finish the batch in hand, then return (safe to call from a signal handler)."""
        self._stopping.set()
        self._wake.set()
        self.clips.wake()

    async def run(self) -> None:
        if self.models.current is None:
            try:  # the registry says which model: a database still starting is waited for
                await self.database.run(self.models.load)
            except Stopping:
                self.database.close()
                return
        metrics.MODEL_VERSION.set(self.models.model.version or 0)
        self._background.add(asyncio.create_task(self.purger.run()))
        clips = asyncio.create_task(self.clips.run())
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
            if self._stopping.is_set():  # the clip in hand is finished or given back
                self.clips.wake()
            else:  # cancelled or failed: nothing more is finished
                clips.cancel()
            await asyncio.gather(clips, return_exceptions=True)
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
        self.clips.wake()

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

    async def _release_lost_claims(self) -> None:
        """A claim failed: if its commit went through all the same (the answer was lost), the
        rows it took would wait for their lease with an attempt counted. Between batches this
        worker holds no photo, so every photo still locked by it goes back to the queue (the
        clip lane's clip is its own)."""
        released = await self._db(
            lambda s: queue.release(s, worker=self.name, ids=None, kind="photo")
        )
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
