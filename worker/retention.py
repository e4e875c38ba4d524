"""The worker's purge: lets go of answered photos (db.retention) every PURGE_INTERVAL_SECONDS,
and right after each batch when photos are not kept at all (PREDICTION_RETENTION_HOURS=0)."""

import asyncio
import contextlib
import logging

from db.engine import Storage
from db.retention import purge
from emobot.settings import Settings

log = logging.getLogger(__name__)


class Purger:
    def __init__(self, settings: Settings, storage: Storage):
        self.settings = settings
        self.storage = storage
        self._wake = asyncio.Event()

    def batch_answered(self) -> None:
        """A batch was answered: with no retention its photos go now, not at the next round."""
        if self.settings.prediction_retention_hours == 0:
            self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                report = await purge(
                    self.storage.sessions,
                    self.storage.blobs,
                    retention_hours=self.settings.prediction_retention_hours,
                )
            except Exception:  # the database or the store is away: the next round tries again
                log.exception("purge failed")
            else:
                if report.requests or report.exports:
                    log.info("purge: %s", report.lines()[-1])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.purge_interval_seconds)
