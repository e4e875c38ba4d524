"""The buttons under an answer in a private chat (👍 right / ✏️ correct it), built by the worker
and read by the bot: one format for both, here below them (the bot's `FeedbackCb` packs and
parses the same strings; tests/bot/test_feedback.py holds them together)."""

from typing import Any, Final

from emobot.i18n import t

PREFIX = "fb"
# Each class's emoji: in answers (worker) and on the correction buttons (bot).
EMOJI: Final = {"negative": "😟", "happy": "😄", "surprise": "😮", "neutral": "😐"}


def pack(request_id: int, action: str, face: int = 0, label: str = "") -> str:
    """`fb:<request>:<action>:<face>:<label>`, as aiogram's CallbackData packs FeedbackCb."""
    return f"{PREFIX}:{request_id}:{action}:{face}:{label}"


def answer_buttons(lang: str, request_id: int) -> dict[str, Any]:
    """The inline keyboard under an answer, as the Bot API's JSON."""
    return {
        "inline_keyboard": [
            [
                {"text": t(lang, "feedback.right"), "callback_data": pack(request_id, "ok")},
                {"text": t(lang, "feedback.correct"), "callback_data": pack(request_id, "fix")},
            ]
        ]
    }
