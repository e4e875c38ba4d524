"""A test user: what a person does in a private chat with the bot, as updates."""

from typing import TYPE_CHECKING, Any

from playground.botapi.records import BotCall, Json

if TYPE_CHECKING:
    from playground.botapi.methods import BotAPIEmulator


class FakeUser:
    """A person chatting with the bot in a private chat (chat id = user id)."""

    def __init__(
        self,
        emulator: "BotAPIEmulator",
        user_id: int,
        first_name: str,
        *,
        language_code: str | None = "ru",
        username: str | None = None,
        is_bot: bool = False,
    ):
        self.emulator = emulator
        self.is_bot = is_bot
        self.id = user_id
        self.first_name = first_name
        self.language_code = language_code
        self.username = username

    def as_json(self) -> Json:
        user: Json = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.username:
            user["username"] = self.username
        if self.language_code:
            user["language_code"] = self.language_code
        return user

    def chat_json(self) -> Json:
        return {"id": self.id, "type": "private", "first_name": self.first_name}

    def _message(self, **content: Any) -> Json:
        return self.emulator.user_message(self, content)

    def send_text(self, text: str) -> Json:
        """Send a text message (a leading `/word` is marked as a bot command)."""
        content: Json = {"text": text}
        if text.startswith("/"):
            length = len(text.split(maxsplit=1)[0])
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        return self._message(**content)

    send_command = send_text

    def send_photo(
        self, data: bytes, *, caption: str | None = None, media_group_id: str | None = None
    ) -> Json:
        """Send a compressed photo (the bytes are delivered as they are)."""
        content: Json = {"photo": [self.emulator.photo_size(data)]}
        if caption:
            content["caption"] = caption
        if media_group_id:
            content["media_group_id"] = media_group_id
        return self._message(**content)

    def send_document(
        self,
        data: bytes,
        file_name: str,
        mime_type: str | None = None,
        *,
        caption: str | None = None,
        media_group_id: str | None = None,
        file_size: int | None = None,
    ) -> Json:
        """Send a file; `file_size` overrides the announced size (Telegram's metadata)."""
        stored = self.emulator.store_file(data, "documents", "", mime_type, name=file_name)
        document: Json = {
            "file_id": stored.file_id,
            "file_unique_id": stored.unique_id,
            "file_name": file_name,
            "file_size": len(data) if file_size is None else file_size,
        }
        if mime_type:
            document["mime_type"] = mime_type
        content: Json = {"document": document}
        if caption:
            content["caption"] = caption
        if media_group_id:
            content["media_group_id"] = media_group_id
        return self._message(**content)

    def send_album(self, photos: list[bytes]) -> list[Json]:
        """Several photos as one album: one update each, sharing a media_group_id."""
        group = f"album{next(self.emulator._ids)}"
        return [self.send_photo(data, media_group_id=group) for data in photos]

    def send_sticker(self, data: bytes = b"RIFF\x00\x00\x00\x00WEBPVP8 ") -> Json:
        stored = self.emulator.store_file(data, "stickers", ".webp", "image/webp")
        sticker = {
            "file_id": stored.file_id,
            "file_unique_id": stored.unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": "🙂",
        }
        return self._message(sticker=sticker)

    def send_video(
        self,
        data: bytes = b"\x00\x00\x00\x18ftypmp42",
        duration: int = 3,
        *,
        file_size: int | None = None,
    ) -> Json:
        """A video (its size as given: Telegram reads it from the file)."""
        return self._message(video=self._clip(data, "videos", duration, file_size, 640, 480))

    def send_video_note(
        self, data: bytes, duration: int = 3, *, file_size: int | None = None
    ) -> Json:
        """A round video note: square, `length` its side (Telegram's 384 or more)."""
        note = self._clip(data, "video_notes", duration, file_size, 0, 0)
        note = {k: v for k, v in note.items() if k not in ("width", "height", "mime_type")}
        return self._message(video_note={**note, "length": 384})

    def send_animation(
        self,
        data: bytes,
        duration: int = 3,
        *,
        file_name: str = "animation.gif.mp4",
        mime_type: str = "video/mp4",
        file_size: int | None = None,
    ) -> Json:
        """A GIF as Telegram delivers it: an animation, with the same file as a document too
        (for old clients), usually converted to a silent MP4."""
        animation = {
            **self._clip(data, "animations", duration, file_size, 320, 320, mime_type),
            "file_name": file_name,
        }
        document = {
            k: animation[k] for k in ("file_id", "file_unique_id", "file_name", "file_size")
        }
        return self._message(animation=animation, document={**document, "mime_type": mime_type})

    def _clip(
        self,
        data: bytes,
        folder: str,
        duration: int,
        file_size: int | None,
        width: int,
        height: int,
        mime_type: str = "video/mp4",
    ) -> Json:
        stored = self.emulator.store_file(data, folder, ".mp4", mime_type)
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.unique_id,
            "width": width,
            "height": height,
            "duration": duration,
            "mime_type": mime_type,
            "file_size": len(data) if file_size is None else file_size,
        }

    def press(
        self,
        message: "BotCall | int",
        *,
        text: str | None = None,
        data: str | None = None,
    ) -> Json:
        """Press an inline button of a bot message (its current markup, after edits), found by
        its text or its callback data. Raises LookupError when the message has no such button."""
        message_id = message.message_id if isinstance(message, BotCall) else message
        if message_id is None:
            raise LookupError(f"{message!r} is not a message")
        return self.emulator.press(self, message_id, text=text, data=data)
