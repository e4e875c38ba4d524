"""Admin commands: dataset statistics, export to the chat, retraining and the model registry."""

import asyncio
import contextlib
import logging
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import FSInputFile
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.messages import edit_message
from bot.services.accuracy import accuracy_text
from db.blobs import BlobStore
from db.exporter import export_dataset
from db.models import ModelVersion
from db.queue import depth
from db.readiness import how_to_import, readiness
from db.registry import (
    active_model,
    current_training_run,
    get_model,
    list_models,
    promote,
    queue_training_run,
)
from db.retention import EXPORT_LINK_SECONDS
from db.stats import dataset_stats
from emobot.i18n import label_name, t
from emobot.labels import CLASSES
from emobot.settings import Settings
from ml.job_params import JobParams

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 2.0


def _headline(metrics: dict[str, Any]) -> tuple[str, str]:
    """Balanced accuracy and accuracy on test-4, as the trainer records them."""
    test = metrics.get("test_4", metrics)
    return tuple(  # type: ignore[return-value]
        f"{test[k]:.3f}" if isinstance(test.get(k), float) else "–"
        for k in ("balanced_accuracy", "accuracy")
    )


def _model_line(lang: str, model: ModelVersion) -> str:
    balanced, accuracy = _headline(model.metrics)
    return t(
        lang,
        "admin.models.item",
        version=model.version,
        arch=model.arch,
        balanced=balanced,
        created=model.created_at.strftime("%Y-%m-%d %H:%M"),
        active=t(lang, "admin.models.active") if model.is_active else "",
    ) + (t(lang, "admin.models.accuracy", accuracy=accuracy) if accuracy != "–" else "")


async def stats_text(session: AsyncSession, lang: str, settings: Settings) -> str:
    """The dataset's counts, the queue and the active model; when the dataset cannot train a
    model (or FER2013 is missing from it), what is missing and how to load FER2013."""
    stats = await dataset_stats(session)
    rows = []
    for source, split in sorted({(s, sp) for s, sp, _ in stats.stored}):
        counts = ", ".join(
            f"{label_name(lang, c)} {stats.stored.get((source, split, c), 0)}" for c in CLASSES
        )
        rows.append(f"{source}/{split}: {counts}")
    model = await active_model(session)
    text = t(
        lang,
        "admin.stats",
        table="\n".join(rows) or "–",
        deleted=stats.deleted,
        depth=await depth(session),
        model=_model_line(lang, model) if model else t(lang, "admin.no_model"),
    )
    ready = await readiness(session, settings.min_train_per_class, settings.min_test_per_class)
    notes = [t(lang, "admin.stats.empty")] if ready.empty else []
    if stats.flags["near_conflict"]:
        notes.append(t(lang, "admin.stats.near_conflicts", count=stats.flags["near_conflict"]))
    if not ready.ready:
        notes.append(ready.explain(lang, settings.fer2013_zip))
    elif not any(source == "fer2013" for source, _, _ in stats.stored):
        notes += [t(lang, "admin.stats.no_fer"), how_to_import(lang, settings.fer2013_zip)]
    return "\n\n".join([text, await accuracy_text(session, lang), *notes])


def raw_ids_asked(args: str) -> bool:
    """`/export` arguments: nothing, `ids=pseudonymous` or `ids=raw`; ValueError otherwise."""
    choice = {"": False, "ids=pseudonymous": False, "ids=raw": True}.get(args.strip().lower())
    if choice is None:
        raise ValueError(args)
    return choice


async def export_to_chat(
    bot: Bot,
    sessions: async_sessionmaker[AsyncSession],
    blobs: BlobStore,
    chat_id: int,
    lang: str,
    *,
    workdir: Path,
    document_limit: int,
    raw_ids: bool = False,
    pseudonym_key: SecretStr | None = None,
) -> None:
    """Write the dataset zip, showing progress by editing one message, then send it as a
    document, or as a download URL from the blob store when it is too big for a document
    (removed by the purge once the URL expired)."""
    status = await bot.send_message(chat_id, t(lang, "admin.export.started"))
    progress = {"done": 0, "total": 0}

    async def report() -> None:
        shown = -1
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            if progress["total"] and progress["done"] != shown:
                shown = progress["done"]
                with contextlib.suppress(TelegramBadRequest):
                    await bot.edit_message_text(
                        t(lang, "admin.export.progress", **progress),
                        chat_id=chat_id,
                        message_id=status.message_id,
                    )

    def on_progress(done: int, total: int) -> None:
        progress.update(done=done, total=total)

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    name = f"emobot-dataset-{stamp}.zip"
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    reporter = asyncio.create_task(report())
    try:
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            path = Path(tmp) / name
            summary = await export_dataset(
                path,
                sessions,
                blobs,
                progress=on_progress,
                raw_ids=raw_ids,
                pseudonym_key=pseudonym_key,
            )
            size = path.stat().st_size
            reporter.cancel()
            ids = t(lang, "admin.export.raw") if raw_ids else t(lang, "admin.export.pseudonymous")
            mb = f"{size / 2**20:.1f}"
            done = t(lang, "admin.export.done", images=summary.images, size=mb, ids=ids)
            await edit_message(bot, chat_id, status.message_id, done)
            if size <= document_limit:
                await bot.send_document(chat_id, FSInputFile(path, filename=name))
                return
            await _send_link(bot, blobs, chat_id, lang, path, document_limit)
    finally:
        reporter.cancel()


# Exports running in the background; referenced here so that they are not collected mid-way.
_EXPORTS: set[asyncio.Task[None]] = set()


def start_export(bot: Bot, chat_id: int, lang: str, **export: Any) -> asyncio.Task[None]:
    """`export_to_chat` as a background job: the update's handler returns at once, so the
    bot answers the admin (and holds no database connection for the update) while the
    archive is built. A failure is logged and told in the chat."""

    async def run() -> None:
        try:
            await export_to_chat(bot, chat_id=chat_id, lang=lang, **export)
        except Exception:
            log.exception("export to chat %s failed", chat_id)
            with contextlib.suppress(Exception):
                await bot.send_message(chat_id, t(lang, "error"))

    task = asyncio.create_task(run(), name=f"export-{chat_id}")
    _EXPORTS.add(task)
    task.add_done_callback(_EXPORTS.discard)
    return task


async def _send_link(
    bot: Bot, blobs: BlobStore, chat_id: int, lang: str, path: Path, document_limit: int
) -> None:
    """An archive too big for a document: put in the store (the purge removes it once its
    link expired) and its download link sent; where the store gives no links (a local
    folder), its key in the store. Removed again when the person could not be told."""
    key = f"exports/{path.name}"
    await blobs.put(key, await asyncio.to_thread(path.read_bytes), "application/zip")
    try:
        url = await blobs.url(key, EXPORT_LINK_SECONDS)
        limit = document_limit // 2**20
        text = (
            t(lang, "admin.export.url", limit=limit, url=url)
            if url
            else t(lang, "admin.export.no_url", limit=limit, location=key)
        )
        await bot.send_message(chat_id, text)
    except BaseException:
        # Nobody knows it is there: it would only fill the store until the purge.
        await blobs.delete(key)
        raise


async def retrain(
    session: AsyncSession,
    bot: Bot,
    settings: Settings,
    user_id: int,
    chat_id: int,
    lang: str,
    params: JobParams,
) -> None:
    """Queue a run; its progress message is the one sent here, which the trainer edits every
    epoch. Refused while a run is queued or running, and when the dataset cannot train a model
    (the trainer checks again when it starts the run)."""
    ready = await readiness(session, settings.min_train_per_class, settings.min_test_per_class)
    if not ready.ready:
        explained = ready.explain(lang, settings.fer2013_zip)
        await bot.send_message(chat_id, f"{t(lang, 'admin.retrain.refused')}\n{explained}")
        return
    run = await queue_training_run(
        session, requested_by=user_id, chat_id=chat_id, params=params.as_dict(), language=lang
    )
    if run is None:
        current = await current_training_run(session)
        await bot.send_message(
            chat_id,
            t(
                lang,
                "admin.retrain.busy",
                run=current.id if current else "?",
                status=current.status if current else "?",
            ),
        )
        return
    queued = t(lang, "admin.retrain.queued", run=run.id, arch=params.arch, epochs=params.epochs)
    promotion = (
        t(lang, "admin.retrain.promote") if params.promote else t(lang, "admin.retrain.keep")
    )
    message = await bot.send_message(chat_id, f"{queued} {promotion}")
    run.progress_message_id = message.message_id


async def models_text(session: AsyncSession, lang: str) -> str:
    models = await list_models(session)
    if not models:
        return t(lang, "admin.models.empty")
    return "\n".join(_model_line(lang, m) for m in models)


@dataclass(frozen=True)
class Comparison:
    """A model beside the active one, on the same test split when both were measured on one."""

    basis: str  # test_4 | run | none
    new: float | None
    old: float | None

    @property
    def worse_or_unknown(self) -> bool:
        return self.basis == "none" or self.new is None or self.old is None or self.new < self.old


def _balanced(metrics: dict[str, Any]) -> float | None:
    value = metrics.get("balanced_accuracy")
    return value if isinstance(value, float) else None


def compare(candidate: ModelVersion, active: ModelVersion) -> Comparison:
    """Balanced accuracy on FER2013's test-4 when both have it over the same images; else the
    active model measured by the candidate's own run on its test split; else not comparable."""
    new_4, old_4 = candidate.metrics.get("test_4", {}), active.metrics.get("test_4", {})
    if new_4.get("n") and new_4.get("n") == old_4.get("n"):
        return Comparison("test_4", _balanced(new_4), _balanced(old_4))
    rival = candidate.metrics.get("compared_with") or {}
    if rival.get("version") == active.version:
        return Comparison("run", _balanced(candidate.metrics), _balanced(rival))
    new = _balanced(new_4) or _balanced(candidate.metrics)
    return Comparison("none", new, _balanced(old_4) or _balanced(active.metrics))


def comparison_text(lang: str, candidate: int, active: int, comparison: Comparison) -> str:
    def shown(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    return t(
        lang,
        "admin.promote.numbers",
        basis=t(lang, f"admin.promote.basis.{comparison.basis}"),
        new=candidate,
        new_value=shown(comparison.new),
        old=active,
        old_value=shown(comparison.old),
    )


@dataclass(frozen=True)
class PromotePlan:
    """What /promote N does: promote now (`done`), or ask first (`ask`), with the numbers."""

    candidate: ModelVersion
    active: ModelVersion | None
    comparison: Comparison | None

    @property
    def ask(self) -> bool:
        return self.comparison is not None and self.comparison.worse_or_unknown


async def plan_promotion(session: AsyncSession, version: int) -> PromotePlan:
    """Raises db.registry.UnknownModel."""
    candidate = await get_model(session, version)
    active = await active_model(session)
    if active is None or active.id == candidate.id:
        return PromotePlan(candidate, active, None)
    return PromotePlan(candidate, active, compare(candidate, active))


async def promote_version(session: AsyncSession, version: int) -> ModelVersion:
    """Raises db.registry.UnknownModel."""
    model = await promote(session, version)
    # Before the reply: the NOTIFY that makes the workers switch goes out on commit, and the
    # admin is told the model is active only once it is.
    await session.commit()
    return model
