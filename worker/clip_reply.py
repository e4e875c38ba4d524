"""The answer to a clip: a chart of its faces' emotions over time and one line of summary in
the person's language ("mostly happy (62%), surprise at 0:07, faces: 2"); a reaction emoji on
their message says the same at a glance."""

from typing import Any, Final

from emobot.i18n import label_name, t
from emobot.labels import CLASSES
from ml.timeline import Timeline, clock, timeline
from worker.replies import Reply

# Telegram takes reactions only from its own list of emoji: the nearest of them per class.
REACTIONS: Final = {"negative": "😢", "happy": "😁", "surprise": "😱", "neutral": "😐"}
UNSURE_REACTION: Final = "🤔"


def summary_line(result: dict[str, Any], line: Timeline, lang: str) -> str:
    summary = line.summary
    if summary.label is None:
        parts = [t(lang, "worker.clip.no_label")]
    else:
        share = f"{round(100 * summary.shares[summary.label])}%"
        parts = [t(lang, "worker.clip.mostly", label=label_name(lang, summary.label), share=share)]
    parts += [
        t(lang, "worker.clip.moment", label=label_name(lang, label), time=clock(start))
        for label, start in summary.moments
    ]
    if summary.faces > 1:
        parts.append(t(lang, "worker.clip.faces", count=summary.faces))
    text = ", ".join(parts)
    if result.get("cut"):
        limit = f"{result['analysed_s']:.0f}"
        text += " " + t(lang, "worker.clip.first_seconds", limit=limit, duration=_seconds(result))
    elif result.get("stopped") in ("broken", "time"):
        text += " " + t(lang, "worker.clip.partial", seconds=f"{result['analysed_s']:.0f}")
    return text[0].upper() + text[1:]


def _seconds(result: dict[str, Any]) -> str:
    return f"{float(result.get('duration_s') or 0):.0f}"


def compose_clip_reply(result: dict[str, Any], lang: str, unsure_below: float) -> Reply:
    """The chart (PNG) with the summary as its caption; a clip with no face in any frame gets
    a text saying so."""
    from ml.chart import draw_timeline

    line = timeline(result, unsure_below)
    if not line.tracks:
        return Reply(t(lang, "worker.clip_no_face"))
    chart = draw_timeline(
        line,
        {c: label_name(lang, c) for c in CLASSES},
        title=t(lang, "worker.clip.title"),
        face_title=t(lang, "worker.clip.face", number="{number}"),
        unsure_label=t(lang, "worker.clip.unsure"),
        seconds_label=t(lang, "worker.clip.seconds"),
    )
    return Reply(summary_line(result, line, lang), chart, filename="emotions.png")


def reaction_for(result: dict[str, Any], unsure_below: float) -> str | None:
    """The reaction for the main face's usual emotion; none for a clip without a face."""
    line = timeline(result, unsure_below)
    if not line.tracks:
        return None
    label = line.summary.label
    return REACTIONS[label] if label is not None else UNSURE_REACTION
