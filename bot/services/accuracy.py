"""How right the bot is by its users' verdicts (feedback), for /stats: per model version, over
the last 7 and 30 days, with the confusion of the longer window."""

from sqlalchemy.ext.asyncio import AsyncSession

from db.feedback import Accuracy, accuracy
from emobot.i18n import label_name, t
from emobot.labels import CLASSES

WINDOWS = (7, 30)


def _confusion(lang: str, item: Accuracy) -> list[str]:
    """One line per class people named: how many, and what the model answered them."""
    lines = []
    for actual in CLASSES:
        row = item.confusion[actual]
        total = sum(row.values())
        if not total:
            continue
        answered = ", ".join(
            f"{label_name(lang, p)} {n}" for p, n in sorted(row.items(), key=lambda kv: -kv[1]) if n
        )
        lines.append(
            t(
                lang,
                "admin.stats.feedback_class",
                label=label_name(lang, actual),
                total=total,
                answered=answered,
            )
        )
    return lines


async def accuracy_text(session: AsyncSession, lang: str) -> str:
    """The /stats section; says so when nobody has judged an answer in 30 days."""
    windows = {days: await accuracy(session, days) for days in WINDOWS}
    if not windows[max(WINDOWS)]:
        return t(lang, "admin.stats.feedback_none")
    lines = [t(lang, "admin.stats.feedback")]
    for item in windows[max(WINDOWS)]:
        version = item.model_version if item.model_version is not None else "?"
        for days in WINDOWS:
            window = next((a for a in windows[days] if a.model_version == item.model_version), None)
            if window is None:
                continue
            lines.append(
                t(
                    lang,
                    "admin.stats.feedback_line",
                    version=version,
                    days=days,
                    right=window.right,
                    total=window.total,
                    percent=round(100 * window.share),
                )
            )
        lines += _confusion(lang, item)
    return "\n".join(lines)
