"""Every chat gets the answer to ITS photo: many chats with distinguishable photos, several
batching workers, leases shorter than a batch, a worker dying mid-batch.

The model gives each distinct face its own probabilities (seeded random weights), and the
photos have 0, 1 or 3 faces, so an answer that went to the wrong chat, or a result computed
from another chat's photo, cannot look right.
"""

import asyncio
import contextlib
import io
import time
import zipfile
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from db.engine import Storage
from db.models import PredictionRequest
from emobot.i18n import pick_language, t
from emobot.labels import CLASSES
from emobot.settings import Settings
from ml.faces import decode_image, find_faces
from ml.inference import Classifier
from playground.botapi import BotAPIEmulator, BotAPIServer, BotCall
from runtime.botclient import BotClient
from tests.conftest import FIXTURE_ARCHIVE
from tests.worker.conftest import enqueue_photo, photo
from worker import replies
from worker.models import ModelHolder
from worker.service import Worker

API = tuple[BotAPIEmulator, BotAPIServer]
LANG = pick_language(None, None)  # the requests have no user: the default language
UNSURE_BELOW = Settings().unsure_below


def _fer_faces(count: int) -> list[bytes]:
    with zipfile.ZipFile(FIXTURE_ARCHIVE) as archive:
        names = sorted(n for n in archive.namelist() if "Training_1" in n or "PrivateTest" in n)
        return [archive.read(n) for n in names[:count]]


def _photos(chats: int) -> list[bytes]:
    """Per chat: three faces, one face, none, or one of many distinct 48×48 crops."""
    crops = iter(_fer_faces(chats))
    fixed = [photo("three_faces.jpg"), photo("astronaut.jpg"), photo("coffee.jpg")]
    return [fixed[i % 4] if i % 4 < 3 else next(crops) for i in range(chats)]


@pytest.fixture(scope="module")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid emotion model with fixed random weights: each face gets its own probabilities."""
    import keras

    from ml.keras_classifier import save_for_serving

    inputs = keras.Input((48, 48, 1))
    dense = keras.layers.Dense(len(CLASSES), activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)), name="random")
    rng = np.random.default_rng(5)
    dense.set_weights(
        [
            rng.normal(0, 0.05, (48 * 48, len(CLASSES))).astype(np.float32),
            np.zeros(len(CLASSES), np.float32),
        ]
    )
    path = tmp_path_factory.mktemp("routing") / "random.keras"
    save_for_serving(model, path)
    return path


@pytest.fixture(scope="module")
def reference(random_model: Path) -> Classifier:
    """The same model, for computing each photo's expected result on its own."""
    return Classifier.load(random_model)


class SlowClassifier(Classifier):
    """The same model, slower than the lease: a batch then outlives its first lease."""

    def __init__(self, inner: Classifier, seconds: float):
        super().__init__(inner.flatbuffer, inner.version, inner.name)
        self.seconds = seconds
        self.predicting = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def predict(self, faces: np.ndarray) -> np.ndarray:
        self._loop.call_soon_threadsafe(self.predicting.set)
        time.sleep(self.seconds)
        return super().predict(faces)


def _expected(data: bytes, classifier: Classifier) -> list[tuple[list[int], list[float]]]:
    """The boxes and probabilities of a photo's faces, computed alone, one photo at a time."""
    faces = find_faces(decode_image(data))
    probs = classifier.predict(np.stack([f.crop for f in faces])) if faces else []
    return [
        ([int(v) for v in f.box], [float(p) for p in row])
        for f, row in zip(faces, probs, strict=True)
    ]


def _check_reply(call: BotCall, result: dict, image_size: tuple[int, int]) -> None:
    """The reply shows exactly the stored result of the chat's own request."""
    all_probs = [f["probs"] for f in result["faces"]]
    if not all_probs:
        assert (call.method, call.text) == ("sendMessage", t(LANG, "worker.no_face"))
    elif len(all_probs) == 1:
        assert (call.method, call.text) == (
            "sendMessage",
            replies.one_face(all_probs[0], LANG, UNSURE_BELOW),
        )
    else:
        assert (call.method, call.text) == (
            "sendPhoto",
            replies.several_faces(all_probs, LANG, UNSURE_BELOW),
        )
        with Image.open(io.BytesIO(call.files["photo"])) as picture:
            assert picture.size == image_size  # drawn on the chat's own photo


async def _enqueue_all(storage: Storage, photos: list[bytes]) -> dict[int, int]:
    """One request per chat (chat ids 9000…); returns chat id → request id."""
    return {
        9000 + i: await enqueue_photo(storage, data, chat_id=9000 + i, message_id=1)
        for i, data in enumerate(photos)
    }


async def _wait_done(
    storage: Storage, ids: list[int], within: float = 90
) -> dict[int, PredictionRequest]:
    async with asyncio.timeout(within):
        while True:
            async with storage.sessions() as session:
                rows = list(
                    await session.scalars(
                        select(PredictionRequest).where(PredictionRequest.id.in_(ids))
                    )
                )
            if all(r.status in ("done", "failed") for r in rows):
                return {r.id: r for r in rows}
            await asyncio.sleep(0.1)


async def _assert_each_chat_got_its_own_answer(
    storage: Storage,
    emulator: BotAPIEmulator,
    requests: dict[int, int],
    photos: list[bytes],
    reference: Classifier,
) -> dict[int, PredictionRequest]:
    rows = await _wait_done(storage, list(requests.values()))
    await asyncio.sleep(0.3)  # a reply sent twice would show up by now
    for i, (chat_id, request_id) in enumerate(requests.items()):
        row = rows[request_id]
        assert row.status == "done", (chat_id, row.status, row.error)
        expected = _expected(photos[i], reference)
        got = [(f["box"], f["probs"]) for f in row.result["faces"]]
        assert [box for box, _ in got] == [box for box, _ in expected], chat_id
        for (_, probs), (_, want) in zip(got, expected, strict=True):
            assert probs == pytest.approx(want, abs=2e-4), chat_id
        replies = [c for c in emulator.calls if c.chat_id == chat_id and c.is_message]
        assert len(replies) == 1, (chat_id, replies)
        assert replies[0].params["reply_parameters"]["message_id"] == 1
        with Image.open(io.BytesIO(photos[i])) as image:
            _check_reply(replies[0], row.result, image.size)
    assert {c.chat_id for c in emulator.calls} == set(requests)
    return rows


@asynccontextmanager
async def _running(*workers: Worker) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Workers whose models are set already, as tasks; stopped when the block ends."""
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield tasks
    finally:
        for worker in workers:
            worker.stop()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _worker(
    settings: Settings, storage: Storage, bot: BotClient, model: Path, slow_s: float = 0
) -> Worker:
    holder = ModelHolder(settings.model_copy(update={"model_path": model}), storage)
    classifier = await holder.load()
    if slow_s:
        holder.current = SlowClassifier(classifier, slow_s)
    return Worker(settings, storage, bot, holder)


def test_finding_faces_in_many_threads_at_once_gives_each_photo_its_own_faces() -> None:
    # The worker decodes and detects the photos of a batch in parallel threads. OpenCV's
    # cascade keeps the scanned image inside the classifier object, so one shared by all
    # threads swapped faces between photos (three_faces.jpg contains astronaut.jpg's face).
    images = [decode_image(photo(n)) for n in ("astronaut.jpg", "three_faces.jpg", "coffee.jpg")]
    alone = [[f.box for f in find_faces(image)] for image in images]
    assert [len(boxes) for boxes in alone] == [1, 3, 0]
    work = images * 20
    with ThreadPoolExecutor(6) as pool:
        for _ in range(3):
            together = list(pool.map(lambda image: [f.box for f in find_faces(image)], work))
            assert together == alone * 20


async def test_many_chats_each_get_their_own_answer_from_three_batching_workers(
    worker_settings: Settings,
    storage: Storage,
    bot: BotClient,
    botapi: API,
    random_model: Path,
    reference: Classifier,
) -> None:
    emulator, _ = botapi
    settings = worker_settings.model_copy(update={"batch_size": 8})
    photos = _photos(36)
    requests = await _enqueue_all(storage, photos)
    workers = [await _worker(settings, storage, bot, random_model) for _ in range(3)]
    async with _running(*workers):
        rows = await _assert_each_chat_got_its_own_answer(
            storage, emulator, requests, photos, reference
        )
    assert all(row.attempts == 1 for row in rows.values())
    assert max(row.timings["batch"] for row in rows.values()) > 1  # batches of several photos


async def test_a_batch_slower_than_its_lease_keeps_it_and_is_answered_once(
    worker_settings: Settings,
    storage: Storage,
    bot: BotClient,
    botapi: API,
    random_model: Path,
    reference: Classifier,
) -> None:
    emulator, _ = botapi
    # Each batch takes 2.5 leases: without renewal an idle worker claims it again.
    settings = worker_settings.model_copy(update={"batch_size": 6, "lease_seconds": 1})
    photos = _photos(12)
    requests = await _enqueue_all(storage, photos)
    workers = [await _worker(settings, storage, bot, random_model, slow_s=2.5) for _ in range(3)]
    async with _running(*workers):
        rows = await _assert_each_chat_got_its_own_answer(
            storage, emulator, requests, photos, reference
        )
    assert [row.attempts for row in rows.values()] == [1] * len(rows)  # never claimed twice
    holders = {row.locked_by for row in rows.values()}
    assert holders <= {w.name for w in workers}


async def test_the_batch_of_a_worker_dying_in_the_model_is_answered_once_by_another(
    worker_settings: Settings,
    storage: Storage,
    bot: BotClient,
    botapi: API,
    random_model: Path,
    reference: Classifier,
) -> None:
    emulator, _ = botapi
    settings = worker_settings.model_copy(update={"batch_size": 16, "lease_seconds": 1})
    photos = _photos(16)
    requests = await _enqueue_all(storage, photos)
    victim = await _worker(settings, storage, bot, random_model, slow_s=3)
    async with _running(victim) as [task]:
        assert isinstance(victim.models.model, SlowClassifier)
        await asyncio.wait_for(victim.models.model.predicting.wait(), 30)
        task.cancel()  # dies with the whole batch in hand: nothing was answered
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [c for c in emulator.calls if c.is_message] == []
    heir = await _worker(settings, storage, bot, random_model)
    async with _running(heir):
        rows = await _assert_each_chat_got_its_own_answer(
            storage, emulator, requests, photos, reference
        )
    assert {row.attempts for row in rows.values()} == {2}
    assert {row.locked_by for row in rows.values()} == {heir.name}
