"""The worker's purge: lets go of answered photos (db.retention) every PURGE_INTERVAL_SECONDS,
and right after each batch when photos are not kept at all (PREDICTION_RETENTION_HOURS=0).
Orphan photos (stored for a row whose insert failed) are swept every ORPHAN_SWEEP_SECONDS:
that lists every photo blob, too much to do after every batch."""

import asyncio
import contextlib
import logging
import time

from db.engine import Storage
from db.retention import purge
from emobot.settings import Settings

log = logging.getLogger(__name__)

ORPHAN_SWEEP_SECONDS = 600.0


class Purger:
    def __init__(self, settings: Settings, storage: Storage):
        self.settings = settings
        self.storage = storage
        self._wake = asyncio.Event()
        self._swept_at = float("-inf")  # time.monotonic() of the last orphan sweep

    def batch_answered(self) -> None:
        """A batch was answered: with no retention its photos go now, not at the next round."""
        if self.settings.prediction_retention_hours == 0:
            self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            sweep = time.monotonic() - self._swept_at >= ORPHAN_SWEEP_SECONDS
            try:
                report = await purge(
                    self.storage.sessions,
                    self.storage.blobs,
                    retention_hours=self.settings.prediction_retention_hours,
                    orphans=sweep,
                )
            except Exception as exc:  # the database or the store is away: the next round tries
                log.warning("purge failed: %r", exc)
            else:
                if sweep:
                    self._swept_at = time.monotonic()
                if report.requests or report.exports or report.orphans:
                    log.info("purge: %s", report.lines()[-1])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.purge_interval_seconds)
