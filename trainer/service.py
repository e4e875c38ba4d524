"""The trainer process: takes queued training runs one at a time and reports to the chat.

Wakes on NOTIFY `training_runs` (and polls every POLL_SECONDS in case a notification was
missed), claims a run, trains with its parameters, writes progress to the run's row every epoch
and edits the chat's progress message, then sends the metrics and the learning-curve and
confusion-matrix pictures. A failure marks the run failed with the error and tells the chat.

While PostgreSQL is unreachable the trainer waits, trying again with backoff; a run the outage
interrupted goes back to the queue. Stopping (SIGTERM) finishes the run in hand. A trainer
that was killed leaves its run `running`; the next trainer puts it back in the queue at its
start and the run resumes from its last finished epoch (its checkpoint, ml/checkpoint.py, in
`DATA_DIR/runs/<run id>`).
"""

import asyncio
import contextlib
import html
import logging
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import asyncpg

import runtime.serving
from db import registry
from db.engine import Storage
from db.models import TrainingRun
from db.notify import LISTEN_ERRORS, listen
from db.readiness import DatasetNotReady
from emobot.i18n import t
from emobot.settings import Settings
from ml.better import verdict_text
from ml.job_params import JobParams
from runtime.botclient import BotClient, BufferedInputFile, TelegramAPIError
from runtime.report import metrics_table
from runtime.serving import DATABASE_ERRORS, Backoff, Serving
from runtime.telegram import make_client
from trainer import metrics

if TYPE_CHECKING:
    from trainer.job import JobResult

log = logging.getLogger(__name__)

# The fixed protocol's sets, in the report's order (those whose data was at hand).
PROTOCOL_SETS = ("test_4", "ferplus_test", "realphotos")


class Trainer:
    def __init__(self, settings: Settings, storage: Storage, bot: BotClient | None):
        self.settings = settings
        self.storage = storage
        self.bot = bot
        self.runs_done = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._listener: asyncpg.Connection | None = None

    def stop(self) -> None:
        """Finish the run in hand, then return (safe to call from a signal handler)."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Until stopped: claim queued runs one at a time. While PostgreSQL is unreachable
        (a restart, a failover) it waits and tries again with backoff rather than exiting."""
        backoff = Backoff(first=1.0, limit=10.0)
        # Runs left `running` by a trainer that died, or by this one when the database went
        # away during a run, go back to the queue (one trainer at a time: none is in hand).
        requeue = True
        await self._listen()
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    if requeue:
                        await self._requeue_interrupted()
                        requeue = False
                    async with self.storage.sessions.begin() as session:
                        run = await registry.claim_training_run(session)
                    if run is not None:
                        await self.process(run)
                except DATABASE_ERRORS as exc:
                    requeue = True
                    delay = backoff.next()
                    log.warning(
                        "the database is unreachable (%r); trying again in %.0f s", exc, delay
                    )
                    await self._pause(delay)
                    continue
                backoff.reset()
                if run is not None:
                    continue
                if self._listener is None or self._listener.is_closed():
                    await self._listen()
                await self._pause(self.settings.poll_seconds)
        finally:
            if self._listener is not None:
                with contextlib.suppress(*DATABASE_ERRORS):
                    await self._listener.close()

    async def _requeue_interrupted(self) -> None:
        async with self.storage.sessions.begin() as session:
            interrupted = await registry.requeue_interrupted_runs(session)
        if interrupted:
            log.warning("runs %s were interrupted; queued again", interrupted)

    async def _pause(self, seconds: float) -> None:
        """Until `seconds` pass, a NOTIFY or `stop()`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _listen(self) -> None:
        try:
            self._listener = await listen(
                self.storage.engine, {"training_runs": lambda *_: self._wake.set()}
            )
        except LISTEN_ERRORS as exc:
            log.warning("LISTEN failed (%s); polling every %s s", exc, self.settings.poll_seconds)
            self._listener = None

    async def process(self, run: TrainingRun) -> None:
        lang = run.language  # decided when the run was queued: the whole report speaks it
        # Imported with the first run: TensorFlow and Keras cost an idle trainer 500 MB.
        from ml.training import TrainingInterrupted
        from trainer.job import run_training

        log.info("run %d started with %s", run.id, run.params)
        try:
            params = JobParams.from_dict(run.params or {})
            metrics.started(params.epochs)
            # The chat said "queued" until now; the data takes a while before the first epoch.
            started = t(lang, "trainer.started", run=run.id, arch=params.arch, epochs=params.epochs)
            await self._edit_progress(run, started)

            async def on_progress(progress: dict[str, Any]) -> None:
                metrics.progressed(progress)
                async with self.storage.sessions.begin() as session:
                    await registry.record_progress(session, run.id, progress)
                text = t(
                    lang,
                    "trainer.progress",
                    run=run.id,
                    arch=params.arch,
                    epoch=progress["epoch"],
                    epochs=progress["epochs"],
                    loss=progress["loss"],
                    val=progress["val_bal_acc"],
                )
                await self._edit_progress(run, text)

            result = await run_training(
                self.storage,
                params,
                data_dir=self.settings.data_dir,
                workdir=self.settings.data_dir / "runs" / str(run.id),
                archive=self.settings.fer2013_zip,
                ferplus=self.settings.ferplus_csv,
                photos=self.settings.real_photos,
                on_progress=on_progress,
                min_train_per_class=self.settings.min_train_per_class,
                min_test_per_class=self.settings.min_test_per_class,
                unsure_below=self.settings.unsure_below,
                stop_asked=self._stopping.is_set,
            )
        except TrainingInterrupted:
            # Left `running`: the next trainer queues it again and it resumes from its last
            # finished epoch (the work folder's checkpoint); nothing is told to the chat.
            log.warning("run %d: stopped mid-training; it resumes at the next start", run.id)
            metrics.finished("interrupted")
            return
        except DatasetNotReady as exc:
            log.warning("run %d refused: %s", run.id, exc)
            async with self.storage.sessions.begin() as session:
                await registry.finish_training_run(session, run.id, error=str(exc)[:2000])
            metrics.finished("refused")
            told = [
                t(lang, "trainer.refused", run=run.id),
                exc.readiness.explain(lang, exc.archive),
            ]
            await self._report(run, [html.escape(part, quote=False) for part in told], {}, lang)
            return
        except Exception as exc:
            log.exception("run %d failed", run.id)
            error = f"{type(exc).__name__}: {exc}"[:2000]
            async with self.storage.sessions.begin() as session:
                await registry.finish_training_run(session, run.id, error=error)
            metrics.finished("failed")
            told = t(lang, "trainer.failed", run=run.id, error=error)
            await self._report(run, [html.escape(told, quote=False)], {}, lang)
            return
        async with self.storage.sessions.begin() as session:
            await registry.finish_training_run(session, run.id, model_id=result.model_id)
        metrics.finished("done", result.version, result.metrics)
        self.runs_done += 1
        log.info("run %d: model v%d registered", run.id, result.version)
        summary = self._summary(run, params, result, lang)
        await self._report(run, summary, result.pictures, lang)

    @staticmethod
    def _summary(run: TrainingRun, params: JobParams, result: "JobResult", lang: str) -> list[str]:
        """The report's parts, as HTML: each text escaped (the message is sent with
        parse_mode=HTML, where a stray `<` makes Telegram refuse the whole message)."""
        training = result.metrics["training"]
        parts = [
            t(
                lang,
                "trainer.done",
                run=run.id,
                version=result.version,
                arch=params.arch,
                epochs=training["epochs_run"],
                minutes=round(training["train_seconds"] / 60, 1),
            ),
            t(lang, "trainer.promoted") if result.promoted else t(lang, "trainer.not_promoted"),
        ]
        if (warm := result.metrics.get("warm_start")) is not None:
            parts.append(t(lang, "trainer.warm", version=warm))
        if feedback := result.metrics.get("dataset", {}).get("feedback"):
            parts.append(t(lang, "trainer.feedback", count=feedback))
        if judged := result.metrics.get("feedback"):
            parts.append(
                t(
                    lang,
                    "trainer.feedback_score",
                    n=judged["n"],
                    old=judged["model_version"],
                    right=judged["right"],
                    old_right=judged["old_right"],
                )
            )
        if result.verdict is not None and (rival := result.metrics.get("compared_with")):
            parts.append(verdict_text(lang, result.verdict, result.version, rival["version"]))
        parts = [html.escape(part, quote=False) for part in parts]
        if rival := result.metrics.get("compared_with"):
            table = html.escape(side_by_side(lang, result.metrics, result.version, rival))
            parts.append(f"{html.escape(t(lang, 'trainer.side_by_side'))}:\n<pre>{table}</pre>")
        table = html.escape(metrics_table(result.metrics, lang))
        parts.append(f"{html.escape(t(lang, 'trainer.db_test'))}:\n<pre>{table}</pre>")
        for key in PROTOCOL_SETS:
            if key in result.metrics:
                table = html.escape(metrics_table(result.metrics[key], lang))
                parts.append(f"{html.escape(t(lang, f'trainer.{key}'))}:\n<pre>{table}</pre>")
        return parts

    async def _edit_progress(self, run: TrainingRun, text: str) -> None:
        if self.bot is None or run.chat_id is None or run.progress_message_id is None:
            return
        try:
            await self.bot.edit_message_text(
                text=text, chat_id=run.chat_id, message_id=run.progress_message_id
            )
        except TelegramAPIError as exc:  # deleted message, flood control: the next epoch retries
            log.warning("run %d: progress message not edited: %s", run.id, exc)

    async def _report(
        self, run: TrainingRun, parts: list[str], pictures: dict[str, bytes], lang: str
    ) -> None:
        """One text message (well under Telegram's 4096 characters) and the pictures."""
        if self.bot is None or run.chat_id is None:
            return
        captions = {
            "learning_curve": t(lang, "trainer.curve"),
            "confusion_matrix": t(lang, "trainer.confusion"),
        }
        try:
            await self.bot.send_message(run.chat_id, "\n\n".join(parts), parse_mode="HTML")
            if pictures:
                media = [
                    {
                        "type": "photo",
                        "media": BufferedInputFile(png, f"{name}.png"),
                        "caption": captions.get(name),
                    }
                    for name, png in pictures.items()
                ]
                await self.bot.send_media_group(run.chat_id, media)
        except TelegramAPIError as exc:
            # The run's outcome is in the database either way; only the message is lost.
            log.error("run %d: report not delivered: %s", run.id, exc)
            return
        async with self.storage.sessions.begin() as session:
            await registry.mark_run_reported(session, run.id)


def side_by_side(lang: str, metrics: dict[str, Any], version: int, rival: dict[str, Any]) -> str:
    """Balanced accuracy of the new model and the active one on every set both were measured
    on (the database's test split first, then the protocol's), one row each."""
    rows = [(t(lang, "better.set.test"), metrics, rival)]
    rows += [
        (t(lang, f"better.set.{key}"), metrics[key], rival[key])
        for key in PROTOCOL_SETS
        if key in metrics and key in rival
    ]
    width = max(len(name) for name, _, _ in rows) + 2
    header = f"{'':<{width}}{'v' + str(version):>8}{'v' + str(rival['version']):>8}"
    lines = [header]
    for name, new, old in rows:
        lines.append(
            f"{name:<{width}}{new['balanced_accuracy']:>8.3f}{old['balanced_accuracy']:>8.3f}"
        )
    return "\n".join(lines)


def serve(settings: Settings) -> None:
    """Run the trainer until SIGTERM or Ctrl-C (`emobot trainer`)."""

    def build(storage: Storage, bot: BotClient | None, _: AsyncExitStack) -> Serving:
        return Serving(Trainer(settings, storage, bot))

    # Not asyncio.run: a training cut short at the end of the grace period goes on in its
    # thread, which must not keep the process alive (its run resumes at the next start).
    runtime.serving.run_command(
        runtime.serving.serve(settings, "trainer", build, needs_bot=False, bot_factory=make_client)
    )
