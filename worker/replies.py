"""The worker's answers: composed from a request's result, sent through the Bot API, and what
Telegram's errors mean for a request.

- flood control (`RetryAfter`): `Flooded`, at once: waiting here would hold the whole batch
  (and the lease of every other request in it) for one chat; the worker puts the request back
  in the queue until then instead, and sends nothing more to that chat meanwhile;
- the chat cannot be written to (bot blocked, chat not found, any other 400/403): retrying will
  never help, the request fails without a reply (`Undeliverable`);
- network trouble or Telegram's own errors: the request goes back to the queue (`SendFailed`).
"""

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import numpy as np

from emobot.feedback import EMOJI
from emobot.i18n import label_name, t
from emobot.labels import CLASSES
from ml.annotate import annotate
from runtime.botclient import (
    BotClient,
    BufferedInputFile,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# Telegram's limits on a message's text and on a photo's caption.
MAX_TEXT = 4096
MAX_CAPTION = 1024


class Undeliverable(Exception):
    """The chat cannot receive this message (blocked, deleted, not found)."""


class SendFailed(Exception):
    """Telegram could not be reached or failed; sending again later may work."""


class Flooded(SendFailed):
    """Flood control: Telegram takes nothing more for this chat for `retry_after` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"flood control: retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Reply:
    text: str
    photo: bytes | None = None  # an annotated JPEG (a clip's chart: PNG), the text its caption
    filename: str = "faces.jpg"


async def _deliver(send: Callable[[], Awaitable[T]]) -> T:
    try:
        return await send()
    except TelegramRetryAfter as exc:
        raise Flooded(exc.retry_after) from exc
    except (TelegramForbiddenError, TelegramBadRequest, TelegramNotFound) as exc:
        raise Undeliverable(exc.message) from exc
    except TelegramUnauthorizedError:
        raise  # a wrong token: no request can be answered, the worker must stop
    except TelegramAPIError as exc:  # network errors, 5xx, conflicts
        raise SendFailed(str(exc)) from exc


UNSURE_EMOJI: Final = "🤔"


def best_class(probs: Sequence[float]) -> str:
    return CLASSES[max(range(len(CLASSES)), key=lambda i: probs[i])]


def _percent(p: float) -> str:
    return f"{round(100 * p)}%"


def probabilities_line(probs: Sequence[float], lang: str) -> str:
    """All four classes, most likely first: `happy 87% · neutral 8% · …`."""
    order = sorted(range(len(CLASSES)), key=lambda i: -probs[i])
    return " · ".join(f"{label_name(lang, CLASSES[i])} {_percent(probs[i])}" for i in order)


def _ranked(probs: Sequence[float]) -> list[str]:
    return [CLASSES[i] for i in sorted(range(len(CLASSES)), key=lambda i: -probs[i])]


def verdict(probs: Sequence[float], lang: str, unsure_below: float) -> str:
    """`😄 happy`; or, when the top probability is below `unsure_below` (a label that would
    more often be wrong than right), `🤔 Not sure: happy or neutral`."""
    first, second = (label_name(lang, c) for c in _ranked(probs)[:2])
    if max(probs) < unsure_below:
        return t(lang, "worker.unsure", emoji=UNSURE_EMOJI, first=first, second=second)
    return t(lang, "worker.one_face", emoji=EMOJI[best_class(probs)], label=first)


def short_label(probs: Sequence[float], lang: str, unsure_below: float) -> str:
    """What is drawn beside a face's box: `happy`, or `happy / neutral?` when unsure."""
    first, second = (label_name(lang, c) for c in _ranked(probs)[:2])
    if max(probs) < unsure_below:
        return f"{first} / {second}?"
    return first


def one_face(probs: Sequence[float], lang: str, unsure_below: float) -> str:
    return f"{verdict(probs, lang, unsure_below)}\n{probabilities_line(probs, lang)}"


def several_faces(all_probs: Sequence[Sequence[float]], lang: str, unsure_below: float) -> str:
    """One line per face, numbered like the boxes on the picture."""
    lines = [t(lang, "worker.faces", count=len(all_probs))]
    for number, probs in enumerate(all_probs, start=1):
        sure = max(probs) >= unsure_below
        emoji = EMOJI[best_class(probs)] if sure else UNSURE_EMOJI
        lines.append(f"{number}. {emoji} {probabilities_line(probs, lang)}")
    return "\n".join(lines)


def compose_reply(
    result: dict[str, Any], image: np.ndarray | None, lang: str, unsure_below: float
) -> Reply:
    """The answer to a request from its stored result: a text for no face or one face, an
    annotated picture with numbered faces for several (`image` is the decoded photo)."""
    all_probs = [f["probs"] for f in result["faces"]]
    if not all_probs:
        return Reply(t(lang, "worker.no_face"))
    if len(all_probs) == 1:
        return Reply(one_face(all_probs[0], lang, unsure_below))
    assert image is not None
    labels = [short_label(p, lang, unsure_below) for p in all_probs]
    photo = annotate(image, [f["box"] for f in result["faces"]], labels)
    return Reply(several_faces(all_probs, lang, unsure_below), photo)


async def send_reply(
    bot: BotClient,
    chat_id: int,
    reply_to: int | None,
    reply: Reply,
    *,
    thread_id: int | None = None,
    reply_markup: dict[str, Any] | None = None,
) -> None:
    """Send `reply` as an answer to message `reply_to` (sent anyway if that one is gone), in
    forum topic `thread_id`, with `reply_markup` (the Bot API's JSON) under it."""
    reply_parameters = (
        {"message_id": reply_to, "allow_sending_without_reply": True}
        if reply_to is not None
        else None
    )
    text = reply.text[:MAX_TEXT]
    if reply.photo is None:
        await _deliver(
            lambda: bot.send_message(
                chat_id,
                text,
                message_thread_id=thread_id,
                reply_parameters=reply_parameters,
                reply_markup=reply_markup,
            )
        )
        return
    photo = BufferedInputFile(reply.photo, filename=reply.filename)
    caption = text if len(text) <= MAX_CAPTION else None
    await _deliver(
        lambda: bot.send_photo(
            chat_id,
            photo,
            caption=caption,
            message_thread_id=thread_id,
            reply_parameters=reply_parameters,
            reply_markup=reply_markup,
        )
    )
    if caption is None:
        # The picture went out: sending the answer again would send it twice. The text that
        # did not follow (flood control, Telegram failing) is left out rather than repeated.
        try:
            await _deliver(lambda: bot.send_message(chat_id, text, message_thread_id=thread_id))
        except SendFailed as exc:
            log.warning("chat %d: the text after the picture was not sent: %s", chat_id, exc)


async def send_reaction(bot: BotClient, chat_id: int, message_id: int, emoji: str) -> None:
    """Put a reaction on the person's message (Telegram allows only its own list of emoji).
    A reaction only adds to an answer already sent: a failure is logged, never retried."""
    try:
        await _deliver(
            lambda: bot.set_message_reaction(
                chat_id=chat_id, message_id=message_id, reaction=[{"type": "emoji", "emoji": emoji}]
            )
        )
    except (Undeliverable, SendFailed) as exc:
        log.info("chat %d: no reaction on message %d: %s", chat_id, message_id, exc)
