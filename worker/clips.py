"""The worker's clip lane: video notes, GIFs and videos, one at a time beside the photo batches.

A clip is one request in the same queue as photos (kind `video`), claimed apart from them, so a
worker's photo batches go on while it reads a clip. The clip is read and analysed in steps of a
few frames (ml/clips.py) on a thread of its own, which runs at a lower priority (nice
+CLIP_NICENESS): when photos and a clip compete for the cores, the kernel gives them to the
photos first, and the clip takes what is left (on a machine with nothing else to do, all of
one core). Measured in benchmarks/README.md ("Video").
Everything else is the photo path's: the lease renewed while it is worked on, the result stored
before the reply (a worker killed after that answers from it without reading the clip again),
the reply recorded as soon as it is sent, the same failure policy.

SIGTERM: a clip whose analysis is under way is given back at its next step (its attempt not
counted), for another worker or the next start; one being answered is finished.
"""

import asyncio
import contextlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from db import queue
from db.queue import Claimed
from ml.clips import ClipAnalysis, ClipError, open_clip
from worker import metrics
from worker.clip_reply import compose_clip_reply, reaction_for
from worker.job import Job
from worker.outage import DATABASE_ERRORS, Stopping
from worker.replies import Reply

if TYPE_CHECKING:
    from worker.service import Worker

log = logging.getLogger("worker")

# How much lower than the photos' the clip thread's priority is (Linux niceness of the thread).
CLIP_NICENESS = 10


def _lower_priority() -> None:
    """Run this thread (the clip lane's) at a lower priority than the rest of the worker."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CLIP_NICENESS)
    except (OSError, AttributeError):  # not Linux, or not allowed: same priority as photos
        log.info("the clip thread runs at the photos' priority")


@dataclass(eq=False)
class ClipJob(Job):
    """A clip on its way through the lane; answered with a chart and a summary line."""

    texts: ClassVar[str] = "worker.clip_"
    feedback: ClassVar[bool] = False  # the buttons judge a photo's faces

    @property
    def found_nothing(self) -> bool:
        return not (self.result or {}).get("tracks")

    def compose(self, unsure_below: float) -> Reply:
        assert self.result is not None
        return compose_clip_reply(self.result, self.lang, unsure_below)

    def reaction(self, unsure_below: float) -> str | None:
        assert self.result is not None
        return reaction_for(self.result, unsure_below)


class _GivenBack(Exception):
    """The worker is stopping: the clip goes back to the queue unanswered."""


class ClipLane:
    def __init__(self, worker: "Worker"):
        self.worker = worker
        self.settings = worker.settings
        self._wake = asyncio.Event()
        self.clips = 0
        # One clip at a time, on one thread (its own face detector: about 30 MB once used).
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="clip", initializer=_lower_priority)

    def wake(self) -> None:
        self._wake.set()

    @property
    def _stopping(self) -> bool:
        return self.worker._stopping.is_set()

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self._thread.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                claimed = await self._claim()
            except DATABASE_ERRORS as exc:
                # The photo loop waits out an outage; this lane just looks again later.
                log.warning("%s: claiming a clip failed: %r", self.worker.name, exc)
                claimed = None
            if claimed is None:
                # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives
                # as the event is set, and the lane would go on claiming after its worker died.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.poll_seconds):
                        await self._wake.wait()
                continue
            try:
                await self.process(claimed)
            except Stopping:
                return

    async def _claim(self) -> Claimed | None:
        async with self.worker.storage.sessions.begin() as session:
            claimed = await queue.claim(
                session,
                worker=self.worker.name,
                limit=1,
                lease_s=self.settings.lease_seconds,
                kind="video",
            )
        return claimed[0] if claimed else None

    async def process(self, claimed: Claimed) -> None:
        worker = self.worker
        job = ClipJob(claimed, claimed.language, result=claimed.result)
        over = claimed.attempts > self.settings.max_attempts
        keeper = asyncio.create_task(worker._keep_lease([claimed.id]))
        started = time.perf_counter()
        try:
            if not over and job.result is None:
                await worker._fetch(job)
                if job.data is not None:
                    try:
                        await self._analyse(job)
                    except _GivenBack:
                        await worker._db(
                            lambda s: queue.release(s, worker=worker.name, ids=[claimed.id])
                        )
                        log.info("%s: stopping; gave back clip %d", worker.name, claimed.id)
                        return
            held = await worker._db(lambda s: self._save(s, job))
            if claimed.id in held:
                await worker._answer(job, over)
        finally:
            keeper.cancel()
        worker.purger.batch_answered()  # the clip is let go of now (the retention rule)
        self.clips += 1
        outcome = job.failure_text if job.failure else "retried" if job.retry else "answered"
        if outcome == "answered" and job.found_nothing:
            outcome = "no_face"
        metrics.CLIPS.labels(outcome).inc()
        log.info(
            "%s: clip %d: %s, %d frames, %d faces in %.1f ms",
            worker.name,
            claimed.id,
            outcome,
            len((job.result or {}).get("frames", [])),
            sum(len(f["faces"]) for f in (job.result or {}).get("frames", [])),
            (time.perf_counter() - started) * 1000,
        )

    async def _save(self, session: Any, job: ClipJob) -> set[int]:
        worker = self.worker
        request = job.request
        if job.result is None or request.result is not None:  # nothing new to store
            return await queue.still_held(session, worker=worker.name, ids=[request.id])
        version = worker.models.model.version
        timings = {"analysis_ms": job.result.get("analysis_ms"), "kind": "video"}
        return await queue.save_results(
            session,
            worker=worker.name,
            lease_s=self.settings.lease_seconds,
            results={request.id: (job.result, version, timings)},
        )

    async def _analyse(self, job: ClipJob) -> None:
        """Read the clip step by step on the clip thread; sets the job's result, or its
        failure (the clip cannot be read) or retry (something else failed)."""
        assert job.data is not None
        loop = asyncio.get_running_loop()
        pool = self._thread
        settings = self.settings
        classifier = self.worker.models.model
        started = time.perf_counter()
        # The whole process's CPU time: with no photo meanwhile, the clip's cost on every
        # thread (decoding threads and the model's included), whatever the neighbours do.
        cpu_started = time.process_time()
        deadline = time.monotonic() + settings.clip_time_limit_seconds
        data, job.data = job.data, None

        def start() -> ClipAnalysis:
            clip = open_clip(
                data,
                fps=settings.clip_fps,
                max_frames=settings.clip_max_frames,
                max_seconds=settings.clip_max_seconds,
                deadline=deadline,
            )
            return ClipAnalysis(clip, classifier)

        analysis: ClipAnalysis | None = None
        try:
            analysis = await loop.run_in_executor(pool, start)
            while await loop.run_in_executor(pool, analysis.step):
                if self._stopping:
                    raise _GivenBack
            job.result = analysis.result()
        except ClipError as exc:
            job.failure, job.failure_text = f"clip: {exc}", exc.reason
            return
        except _GivenBack:
            raise
        except Exception as exc:  # not the clip's fault as far as we know: try again
            log.exception("%s: analysing clip %d failed", self.worker.name, job.request.id)
            job.retry = f"clip analysis failed: {exc!r}"
            return
        finally:
            if analysis is not None:
                analysis.close()
        # As for photos: the model's own threshold, kept so a retried answer shades alike.
        job.result["unsure_below"] = classifier.unsure_below or settings.unsure_below
        job.result["analysis_ms"] = round((time.perf_counter() - started) * 1000, 1)
        job.result["process_cpu_ms"] = round((time.process_time() - cpu_started) * 1000, 1)
        metrics.CLIP_FRAMES.inc(len(job.result["frames"]))
        metrics.CLIP_SECONDS.observe(time.perf_counter() - started)
