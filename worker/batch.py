"""The batch pipeline of the worker: fetch, detect, classify, save, answer."""

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from db import queue
from db.blobs import BlobNotFound
from db.queue import Claimed
from emobot.labels import CLASSES
from ml.faces import decode_image, whole_face
from ml.image_header import ImageError, UnusableShape
from ml.upright import turned, upright_faces
from worker import metrics
from worker.answers import Answering
from worker.job import Job
from worker.models import ModelHolder
from worker.outage import DATABASE_ERRORS
from worker.retention import Purger

log = logging.getLogger("worker")

# How many times per LEASE_SECONDS a batch's lease is renewed (a heartbeat).
LEASE_RENEWALS = 6


class Batches(Answering):
    """A claimed batch worked through: photos fetched, faces found, the model run once for the
    whole batch, results saved, every request answered. Mixed into Worker."""

    models: ModelHolder
    purger: Purger
    batches: int
    _detection: ThreadPoolExecutor
    _keeper: asyncio.Task[None] | None

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
            # The model's own calibrated threshold; the setting for a model without one.
            unsure_below = classifier.unsure_below or self.settings.unsure_below
            for j in fresh:
                j.result = _result(j, probs[start : start + len(j.faces)], unsure_below)
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


def _result(job: Job, probs: np.ndarray, unsure_below: float) -> dict[str, Any]:
    """What is stored for a request: every face's box and probabilities (CLASSES order), in
    the photo as turned upright (`turn` degrees clockwise), and the top probability below which
    the model that gave them is unsure."""
    assert job.image is not None
    height, width = job.image.shape[:2]
    return {
        "classes": list(CLASSES),
        "width": width,
        "height": height,
        "turn": job.turn,
        "unsure_below": unsure_below,
        "faces": [
            {"box": [int(v) for v in face.box], "probs": [round(float(p), 4) for p in row]}
            for face, row in zip(job.faces, probs, strict=True)
        ],
    }
