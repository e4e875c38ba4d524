"""What the fake Bot API keeps and answers with: its errors, uploads and stored files, the
bot's calls, chats; and a photo's size as Telegram reports it."""

import io
import itertools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, UnidentifiedImageError

# Image formats whose size is read (those the platform decodes).
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height from the image's header (as Telegram reports a photo's size), (0, 0)
    when there is none. Pillow alone: the fake Telegram loads nothing of the platform's."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # nothing decoded
            with Image.open(io.BytesIO(data), formats=PHOTO_FORMATS) as image:
                return image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        return 0, 0


Json = dict[str, Any]

# Telegram refuses getFile for bigger files: bots must check `file_size` first.
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
# The emoji Telegram accepts as a reaction (ReactionTypeEmoji); any other is REACTION_INVALID.
REACTION_EMOJI = frozenset(
    (  # noqa: SIM905 - the list as Telegram's documentation prints it
        "👍 👎 ❤ 🔥 🥰 👏 😁 🤔 🤯 😱 🤬 😢 🎉 🤩 🤮 💩 🙏 👌 🕊 🤡 🥱 🥴 😍 🐳 ❤\u200d🔥 🌚 🌭 "
        "💯 🤣 ⚡ 🍌 🏆 💔 🤨 😐 🍓 🍾 💋 🖕 😈 😴 😭 🤓 👻 👨\u200d💻 👀 🎃 🙈 😇 😨 🤝 "
        "✍ 🤗 🫡 🎅 🎄 ☃ 💅 🤪 🗿 🆒 💘 🙉 🦄 😘 💊 🙊 😎 👾 🤷\u200d♂ 🤷 🤷\u200d♀ 😡"
    ).split()
)


class BotAPIError(Exception):
    """A Bot API error answer: `{"ok": false, "error_code": …, "description": …}`."""

    def __init__(self, code: int, description: str, retry_after: int | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> Json:
        body: Json = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclass
class Upload:
    """A file part of a request."""

    name: str
    data: bytes


@dataclass
class StoredFile:
    file_id: str
    unique_id: str
    path: str
    data: bytes
    name: str | None = None
    mime_type: str | None = None

    def info(self) -> Json:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.unique_id,
            "file_size": len(self.data),
            "file_path": self.path,
        }

    def photo_size(self) -> Json:
        """The file as a photo's one size (PhotoSize), its dimensions read from its header."""
        width, height = image_size(self.data)
        return {
            "file_id": self.file_id,
            "file_unique_id": self.unique_id,
            "width": width,
            "height": height,
            "file_size": len(self.data),
        }


@dataclass
class BotCall:
    """One thing the bot did in a chat: sent, edited or deleted a message, sent a chat action,
    answered a button press, …"""

    seq: int
    method: str
    chat_id: int | None
    params: Json
    message_id: int | None = None  # the message sent, edited or deleted
    files: dict[str, bytes] = field(default_factory=dict)  # uploaded files by parameter name

    @property
    def text(self) -> str | None:
        return self.params.get("text") or self.params.get("caption")

    @property
    def reply_markup(self) -> Json | None:
        return self.params.get("reply_markup")

    @property
    def buttons(self) -> list[Json]:
        """Inline keyboard buttons, row by row flattened."""
        markup = self.reply_markup or {}
        return [b for row in markup.get("inline_keyboard", []) for b in row]

    @property
    def is_message(self) -> bool:
        """A new message (not an edit, chat action or answer)."""
        return self.method.startswith("send") and self.method != "sendChatAction"

    def __repr__(self) -> str:
        text = (self.text or "")[:60].replace("\n", " ")
        return f"<{self.seq} {self.method} chat={self.chat_id} msg={self.message_id} {text!r}>"


@dataclass
class Chat:
    id: int
    messages: dict[int, Json] = field(default_factory=dict)  # with edits applied
    mark: int = 0  # calls after this sequence number answer the latest user action
    message_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    info: Json | None = None  # a group's chat JSON; None for a private chat
