"""/stats and /models: the dataset, the queue and the registered models, as text."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.accuracy import accuracy_text
from db.models import ModelVersion
from db.queue import answered_by_kind, depth
from db.readiness import how_to_import, readiness
from db.registry import (
    active_model,
    list_models,
)
from db.stats import dataset_stats
from emobot.i18n import label_name, t
from emobot.labels import CLASSES
from emobot.settings import Settings


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
    answered = await answered_by_kind(session)
    text += "\n" + t(
        lang,
        "admin.stats.answered",
        photos=answered.get("photo", 0),
        clips=answered.get("video", 0),
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


async def models_text(session: AsyncSession, lang: str) -> str:
    models = await list_models(session)
    if not models:
        return t(lang, "admin.models.empty")
    return "\n".join(_model_line(lang, m) for m in models)
