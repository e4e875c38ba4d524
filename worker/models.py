"""Which model the worker predicts with, and switching to a newly promoted one live.

Each model answers "not sure" below its own calibrated threshold (registered with it, or in
the card beside a model file: ml.inference); UNSURE_BELOW is for a model without one.

A promotion NOTIFYs on the `models` channel; the worker then loads the active model in a
thread while batches go on with the current one, and swaps it in between two batches.
"""

import asyncio
import logging
from pathlib import Path

import numpy as np

from db import registry
from db.engine import Storage
from db.models import ModelVersion
from emobot.settings import Settings
from ml.better import unsure_below
from ml.inference import Classifier, flatbuffer_key, shipped_model_path
from ml.preprocess import FACE_SIZE

log = logging.getLogger(__name__)


class ModelHolder:
    def __init__(self, settings: Settings, storage: Storage):
        self.settings = settings
        self.storage = storage
        self.current: Classifier | None = None
        self._pending: Classifier | None = None
        self._lock = asyncio.Lock()

    @property
    def model(self) -> Classifier:
        if self.current is None:
            raise RuntimeError("no model loaded: call load() first")
        return self.current

    async def load(self) -> Classifier:
        """Load the active model (at start): the registry's, else the configured or shipped file."""
        self.current = await self._load_active()
        log.info("model %s loaded", self.current.version or "from file")
        return self.current

    async def refresh(self) -> None:
        """Load the active model aside if it is not the one in use (on a `models` NOTIFY).

        A model that fails to load is logged and the current one stays.
        """
        async with self._lock:
            in_use = (self._pending or self.model).version
            async with self.storage.sessions() as session:
                active = await registry.active_model(session)
            if active is None or active.version == in_use:
                return
            try:
                self._pending = await self._load_registered(active)
            except Exception:
                log.exception("model %d could not be loaded; keeping %s", active.version, in_use)
                return
            log.info("model %d loaded; it answers from the next batch on", active.version)

    def swap(self) -> bool:
        """Between batches: put a newly loaded model in use; True when it changed."""
        if self._pending is None:
            return False
        self.current, self._pending = self._pending, None
        return True

    async def _load_active(self) -> Classifier:
        async with self.storage.sessions() as session:
            active = await registry.active_model(session)
        if active is not None:
            return await self._load_registered(active)
        path = self.settings.model_path or shipped_model_path()
        return await asyncio.to_thread(_load_warm, path, None, None)

    async def _load_registered(self, model: ModelVersion) -> Classifier:
        key = flatbuffer_key(model.blob_key)
        path = await self.storage.blobs.fetch_to(key, self.settings.model_file(model.version))
        return await asyncio.to_thread(_load_warm, path, model.version, unsure_below(model.metrics))


def _load_warm(path: Path, version: int | None, threshold: float | None) -> Classifier:
    """Load and run once, so the first batch does not pay for building the predict function."""
    classifier = Classifier.load(path, version, threshold)
    classifier.predict(np.zeros((1, FACE_SIZE, FACE_SIZE), np.uint8))
    return classifier
