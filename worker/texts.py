"""What the worker says: prediction replies and apologies, in Russian and English."""

from collections.abc import Sequence
from typing import Any, Final

from emobot.labels import CLASSES, DISPLAY_NAMES

EMOJI: Final = {"negative": "😟", "happy": "😄", "surprise": "😮", "neutral": "😐"}
UNSURE_EMOJI: Final = "🤔"

TEXTS: Final = {
    "ru": {
        "one_face": "{emoji} {label}",
        "unsure": "{emoji} Не уверен: {first} или {second}",
        "faces": "Лиц на фото: {count}.",
        "no_face": (
            "Не нашёл на фото лица. Сфотографируйте лицо анфас при хорошем свете, "
            "чтобы оно занимало заметную часть кадра, или пришлите фото, обрезанное по лицу."
        ),
        "unreadable": (
            "Не получилось прочитать это фото: файл повреждён или это не изображение. "
            "Пришлите, пожалуйста, фото ещё раз."
        ),
        "unusable": (
            "Это изображение слишком маленькое или слишком вытянутое, чтобы на нём поместилось "
            "лицо. Пришлите обычную фотографию."
        ),
        "gave_up": (
            "Извините, не получилось обработать это фото после нескольких попыток. "
            "Попробуйте прислать его ещё раз чуть позже."
        ),
    },
    "en": {
        "one_face": "{emoji} {label}",
        "unsure": "{emoji} Not sure: {first} or {second}",
        "faces": "Faces in the photo: {count}.",
        "no_face": (
            "I could not find a face in this photo. Take the photo facing the camera in good "
            "light, with the face filling a good part of the frame, or send a photo cropped "
            "to the face."
        ),
        "unreadable": (
            "I could not read this photo: the file is damaged or is not an image. "
            "Please send the photo again."
        ),
        "unusable": (
            "This image is too small or too narrow to hold a face. Please send an ordinary photo."
        ),
        "gave_up": (
            "Sorry, I could not process this photo after several tries. "
            "Please send it again a little later."
        ),
    },
}


def language_of(language: str | None, telegram_language: str | None) -> str:
    """The user's choice, else English for an English Telegram client, else Russian."""
    if language in TEXTS:
        return language
    if telegram_language and telegram_language.lower().startswith("en"):
        return "en"
    return "ru"


def text(key: str, lang: str, **values: Any) -> str:
    return TEXTS[lang][key].format(**values)


def best_class(probs: Sequence[float]) -> str:
    return CLASSES[max(range(len(CLASSES)), key=lambda i: probs[i])]


def _percent(p: float) -> str:
    return f"{round(100 * p)}%"


def probabilities_line(probs: Sequence[float], lang: str) -> str:
    """All four classes, most likely first: `happy 87% · neutral 8% · …`."""
    names = DISPLAY_NAMES[lang]
    order = sorted(range(len(CLASSES)), key=lambda i: -probs[i])
    return " · ".join(f"{names[CLASSES[i]]} {_percent(probs[i])}" for i in order)


def _ranked(probs: Sequence[float]) -> list[str]:
    return [CLASSES[i] for i in sorted(range(len(CLASSES)), key=lambda i: -probs[i])]


def verdict(probs: Sequence[float], lang: str, unsure_below: float) -> str:
    """`😄 happy`; or, when the top probability is below `unsure_below` (a label that would
    more often be wrong than right), `🤔 Not sure: happy or neutral`."""
    names = DISPLAY_NAMES[lang]
    first, second = _ranked(probs)[:2]
    if max(probs) < unsure_below:
        return text("unsure", lang, emoji=UNSURE_EMOJI, first=names[first], second=names[second])
    return text("one_face", lang, emoji=EMOJI[first], label=names[first])


def short_label(probs: Sequence[float], lang: str, unsure_below: float) -> str:
    """What is drawn beside a face's box: `happy`, or `happy / neutral?` when unsure."""
    names = DISPLAY_NAMES[lang]
    first, second = _ranked(probs)[:2]
    if max(probs) < unsure_below:
        return f"{names[first]} / {names[second]}?"
    return names[first]


def one_face(probs: Sequence[float], lang: str, unsure_below: float) -> str:
    return f"{verdict(probs, lang, unsure_below)}\n{probabilities_line(probs, lang)}"


def several_faces(all_probs: Sequence[Sequence[float]], lang: str, unsure_below: float) -> str:
    """One line per face, numbered like the boxes on the picture."""
    lines = [text("faces", lang, count=len(all_probs))]
    for number, probs in enumerate(all_probs, start=1):
        sure = max(probs) >= unsure_below
        emoji = EMOJI[best_class(probs)] if sure else UNSURE_EMOJI
        lines.append(f"{number}. {emoji} {probabilities_line(probs, lang)}")
    return "\n".join(lines)
