"""The worker's Prometheus metrics.

The queue's depth and the age of its oldest request are read from PostgreSQL when Prometheus
scrapes (every worker reports the same queue: aggregate them with `max`, not `sum`); the rest
is counted by this process.
"""

import logging
from collections.abc import Iterable

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from db import queue
from db.engine import Storage
from db.feedback import Accuracy, accuracy

log = logging.getLogger(__name__)

# From a lone request to a full batch of the largest BATCH_SIZE allowed.
BATCH_SIZE = Histogram(
    "emobot_worker_batch_size",
    "Requests per batch",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
STAGE_SECONDS = Histogram(
    "emobot_worker_stage_duration_seconds",
    "Seconds one batch spent in each stage: fetch (blob store), detect (decoding and face "
    "detection), model (one call for every face), save (results), reply (sends and records)",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
FACES_PER_PHOTO = Histogram(
    "emobot_worker_faces_per_photo",
    "Faces found per photo run through the model",
    buckets=(0, 1, 2, 3, 4, 6, 8, 12, 20, 50),
)
REQUESTS = Counter(
    "emobot_worker_requests_total",
    "Requests this worker finished with, by outcome: answered, no_face, unreadable, unusable, "
    "gave_up, undeliverable, send_failed, flood_limited (given up, no reply), retried (back to "
    "the queue), deferred (back to the queue until its chat's flood wait is over)",
    ["outcome"],
)
REQUEST_SECONDS = Histogram(
    "emobot_worker_request_duration_seconds",
    "From the request's insertion into the queue to its answer being sent",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
ERRORS = Counter(
    "emobot_worker_errors_total",
    "Batches or claims cut short because PostgreSQL or the network failed",
)
MODEL_VERSION = Gauge(
    "emobot_worker_model_version",
    "Registry version of the model answering (0: a model file outside the registry)",
)


def observe_batch(size: int, stage_ms: dict[str, float], faces_per_photo: Iterable[int]) -> None:
    BATCH_SIZE.observe(size)
    for stage, ms in stage_ms.items():
        STAGE_SECONDS.labels(stage).observe(ms / 1000)
    for faces in faces_per_photo:
        FACES_PER_PHOTO.observe(faces)


# Windows (days) of the live accuracy from feedback.
FEEDBACK_DAYS = (7, 30)


class QueueCollector(Collector):
    """`emobot_queue_depth{status}` and `emobot_queue_oldest_age_seconds`, and the live
    accuracy from people's verdicts on answers (`emobot_feedback_*{model,days}`), from the
    snapshot `refresh()` read just before the scrape. When PostgreSQL cannot be read the series
    are left out (Prometheus marks them stale) rather than repeating old numbers."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self.snapshot: queue.Backlog | None = None
        self.verdicts: dict[int, list[Accuracy]] = {}

    async def refresh(self) -> None:
        try:
            async with self.storage.sessions() as session:
                self.snapshot = await queue.backlog(session)
                self.verdicts = {d: await accuracy(session, d) for d in FEEDBACK_DAYS}
        except Exception as exc:
            log.warning("queue metrics not read: %r", exc)
            self.snapshot = None
            self.verdicts = {}

    def describe(self) -> Iterable[Metric]:
        return [self._depth(), self._age(), *self._feedback()]

    def collect(self) -> Iterable[Metric]:
        if self.snapshot is None:
            return []
        depth = self._depth()
        depth.add_metric(["queued"], self.snapshot.queued)
        depth.add_metric(["processing"], self.snapshot.processing)
        age = self._age()
        age.add_metric([], self.snapshot.oldest_age_s)
        faces, right, confusion = self._feedback()
        for days, items in self.verdicts.items():
            for item in items:
                model = str(item.model_version or 0)
                faces.add_metric([model, str(days)], item.total)
                right.add_metric([model, str(days)], item.share)
                for actual, row in item.confusion.items():
                    for predicted, n in row.items():
                        confusion.add_metric([model, str(days), actual, predicted], n)
        return [depth, age, faces, right, confusion]

    @staticmethod
    def _feedback() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        window = ["model", "days"]
        return (
            GaugeMetricFamily(
                "emobot_feedback_faces",
                "Faces of answers their senders judged (👍 / ✏️) in the last N days, by model",
                labels=window,
            ),
            GaugeMetricFamily(
                "emobot_feedback_accuracy",
                "Share of judged faces the model had right in the last N days, by model",
                labels=window,
            ),
            GaugeMetricFamily(
                "emobot_feedback_confusion",
                "Judged faces by the class their sender named and the class answered",
                labels=[*window, "actual", "predicted"],
            ),
        )

    @staticmethod
    def _depth() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "emobot_queue_depth",
            "Prediction requests not answered yet, by status (read from PostgreSQL)",
            labels=["status"],
        )

    @staticmethod
    def _age() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "emobot_queue_oldest_age_seconds",
            "Age of the oldest prediction request not answered yet (read from PostgreSQL)",
        )


def register_queue_collector(storage: Storage) -> QueueCollector:
    collector = QueueCollector(storage)
    REGISTRY.register(collector)
    return collector


CLIPS = Counter(
    "emobot_worker_clips_total",
    "Clips (video notes, GIFs, videos) this worker finished with, by outcome: answered, "
    "no_face, retried, or why it could not be read (not_video, audio_only, too_many_pixels, "
    "unreadable, no_frames)",
    ["outcome"],
)
CLIP_FRAMES = Counter(
    "emobot_worker_clip_frames_total", "Frames sampled from clips and searched for faces"
)
CLIP_SECONDS = Histogram(
    "emobot_worker_clip_analysis_seconds",
    "Seconds one clip took to read, search for faces and classify",
    buckets=(0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
)
