"""A fake Telegram Bot API: an aiohttp server speaking the methods the bot and the worker use,
and a Python API to act as the users who chat with them.

Used by the tests (a real aiogram Dispatcher polls it over HTTP) and as the local
"playground" server behind the browser chat page.

    emulator = BotAPIEmulator()
    async with BotAPIServer(emulator) as server:          # a free port on 127.0.0.1
        bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(server.url)))
        alice = emulator.user(42, "Alice", language_code="en")
        alice.send_text("/start")
        reply = await emulator.wait_for(alice.id, lambda c: "Hello" in (c.text or ""))
        alice.press(reply, text="Yes")                    # an inline button, by text or data

Model:
- A user's private chat id is their user id; group chats (`group()`, playground/groups.py)
  have negative ids, several members, forum topics and Telegram's privacy mode.
- What users do becomes updates that `getUpdates` hands out (offset confirms, `timeout`
  long-polls). Files users send are stored and served by `getFile` and `/file/bot<token>/<path>`.
- What the bot does is recorded as `BotCall`s, numbered in order. Each user action sets the
  chat's mark; `wait_for` and `collect` look at calls made after it (or after `after=`), so a
  test sends something and then waits for the answer to it.
- `pushed` holds every update queued; `push_update(emulator.pushed[-1])` delivers a duplicate.
- Messages (the users' and the bot's) are kept per chat with edits applied, so buttons of an
  edited message can be pressed.
- `fail_next(method, retry_after=n)` makes the next call of a method answer 429 (flood control).
- `flood(chat_id, retry_after=n)`: for the next n seconds every call sending to that chat
  answers 429 with the seconds left, as Telegram's per-chat flood control does.
- `stall(chat_ids)`: calls sending to those chats hang (a slow Telegram) until `unstall()`,
  which lets them through, or `unstall(deliver=False)`, which fails them unrecorded (502).
- Text and captions sent with `parse_mode=HTML` are checked as Telegram checks them
  (`playground.parse_mode`): malformed HTML answers 400 "can't parse entities".

Requests may come as multipart form data (aiogram; file uploads as `attach://<field>`),
url-encoded forms, JSON bodies or query strings.
"""

import asyncio
import contextlib
import copy
import io
import itertools
import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import BodyPartReader, web
from PIL import Image, UnidentifiedImageError

from playground.groups import FakeGroup
from playground.parse_mode import EntityError, check_html

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


log = logging.getLogger(__name__)

Json = dict[str, Any]

# Telegram refuses getFile for bigger files: bots must check `file_size` first.
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
# Parameters that arrive as text in forms but are numbers or JSON.
_INT_PARAMS = frozenset(
    {
        "chat_id",
        "message_id",
        "offset",
        "limit",
        "timeout",
        "reply_to_message_id",
        "cache_time",
        "message_thread_id",
    }
)
_JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "commands",
        "scope",
        "media",
        "allowed_updates",
        "reply_parameters",
        "entities",
        "caption_entities",
        "link_preview_options",
        "message_ids",
    }
)
_BOOL_PARAMS = frozenset({"show_alert", "drop_pending_updates", "disable_notification"})


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

    def send_video(self, data: bytes = b"\x00\x00\x00\x18ftypmp42", duration: int = 3) -> Json:
        stored = self.emulator.store_file(data, "videos", ".mp4", "video/mp4")
        video = {
            "file_id": stored.file_id,
            "file_unique_id": stored.unique_id,
            "width": 640,
            "height": 480,
            "duration": duration,
            "mime_type": "video/mp4",
            "file_size": len(data),
        }
        return self._message(video=video)

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


class BotAPIEmulator:
    """The state behind the fake server: updates, chats, files and everything the bot did."""

    def __init__(
        self, bot_username: str = "emobot_playground_bot", *, state_file: Path | None = None
    ) -> None:
        """`state_file` keeps the update counter across restarts (the playground of
        `emobot run`): Telegram never reuses an update id, and the bot skips ids it has seen
        (for two days), so a fresh counter would make it ignore everyone."""
        self.bot_username = bot_username
        self.state_file = state_file
        self.updates: list[Json] = []  # not yet confirmed by a getUpdates offset
        self.pushed: list[Json] = []  # every update ever queued, in order
        self.calls: list[BotCall] = []
        self.chats: dict[int, Chat] = {}
        self.groups: dict[int, FakeGroup] = {}
        self.token = "1:playground"  # the bot's, as last seen in a call
        self.users: dict[int, FakeUser] = {}
        self.files: dict[str, StoredFile] = {}
        self.files_by_path: dict[str, StoredFile] = {}
        self.commands: dict[str, list[Json]] = {}  # by scope ("default", "chat:42", …)
        self.callback_answers: dict[str, Json] = {}
        self.webhook: Json | None = None
        self.polled = False  # the bot asked for updates at least once: it is up
        # While set and not yet released, file downloads wait on it (hold_downloads).
        self._downloads_gate: asyncio.Event | None = None
        self.held_downloads = 0  # downloads that waited on the gate, for tests to wait for
        self._failures: dict[str, list[BotAPIError]] = {}
        self._floods: dict[int, float] = {}  # chat id -> time.monotonic() the flood ends
        self.flood_refusals: list[tuple[int, str]] = []  # (chat id, method) answered 429
        self._stalled: set[int] = set()
        self._unstalled = asyncio.Event()
        self._deliver_stalled = True
        self._query_users: dict[str, int] = {}  # callback query id -> the user who pressed
        self._ids = itertools.count(1)
        self._update_ids = itertools.count(self._last_update_id() + 1)
        # Set (and replaced) whenever an update arrives or the bot does something.
        self._changed = asyncio.Event()

    # Acting as users -------------------------------------------------------------------

    def user(
        self,
        user_id: int,
        first_name: str = "Test",
        *,
        language_code: str | None = "ru",
        username: str | None = None,
        is_bot: bool = False,
    ) -> FakeUser:
        """A person (or, forged, a bot account) in a private chat with the bot."""
        user = FakeUser(
            self,
            user_id,
            first_name,
            language_code=language_code,
            username=username,
            is_bot=is_bot,
        )
        self.users[user_id] = user
        self.chat(user_id)
        return user

    def group(self, chat_id: int, title: str, **options: Any) -> FakeGroup:
        """A group chat with the bot in it (options: kind, forum, privacy_mode)."""
        return FakeGroup(self, chat_id, title, **options)

    def photo_size(self, data: bytes) -> Json:
        """A compressed photo's one size, its bytes stored as they are."""
        stored = self.store_file(data, "photos", ".jpg", "image/jpeg")
        width, height = image_size(data)
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.unique_id,
            "width": width,
            "height": height,
            "file_size": len(data),
        }

    def chat(self, chat_id: int) -> Chat:
        if chat_id not in self.chats:
            self.chats[chat_id] = Chat(chat_id)
        return self.chats[chat_id]

    def store_file(
        self,
        data: bytes,
        folder: str,
        suffix: str,
        mime_type: str | None = None,
        name: str | None = None,
    ) -> StoredFile:
        n = next(self._ids)
        stored = StoredFile(
            file_id=f"file{n}-{folder}",
            unique_id=f"u{n}",
            path=f"{folder}/file_{n}{suffix}",
            data=data,
            name=name,
            mime_type=mime_type,
        )
        self.files[stored.file_id] = stored
        self.files_by_path[stored.path] = stored
        return stored

    def user_message(self, user: FakeUser, content: Json) -> Json:
        """A message from `user`: stored in the chat and queued as an update; returns it."""
        chat = self.chat(user.id)
        message: Json = {
            "message_id": next(chat.message_ids),
            "date": int(time.time()),
            "chat": user.chat_json(),
            "from": user.as_json(),
            **content,
        }
        chat.messages[message["message_id"]] = message
        self.push_update({"message": message}, chat_id=user.id)
        return message

    def press(
        self, user: FakeUser, message_id: int, *, text: str | None = None, data: str | None = None
    ) -> Json:
        message = self.chat(user.id).messages.get(message_id)
        if message is None:
            raise LookupError(f"no message {message_id} in chat {user.id}")
        buttons = [
            b for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row
        ]
        for button in buttons:
            if (text is None or button.get("text") == text) and (
                data is None or button.get("callback_data") == data
            ):
                break
        else:
            shown = [(b.get("text"), b.get("callback_data")) for b in buttons]
            raise LookupError(f"no button text={text!r} data={data!r} in {shown}")
        query = {
            "id": f"cb{next(self._ids)}",
            "from": user.as_json(),
            "chat_instance": str(user.id),
            # As it is now: a second tap before the bot edited it carries the same message.
            "message": copy.deepcopy(message),
            "data": button.get("callback_data"),
        }
        self._query_users[query["id"]] = user.id
        self.push_update({"callback_query": query}, chat_id=user.id)
        return query

    def push_update(self, update: Json, *, chat_id: int | None = None) -> Json:
        """Queue an update (an `update_id` is added when missing: pushing the same dict twice
        delivers a duplicate); moves the chat's mark."""
        if "update_id" not in update:
            update["update_id"] = next(self._update_ids)
            self._save_update_id(update["update_id"])
        self.updates.append(update)
        self.pushed.append(update)
        if chat_id is not None:
            self.chat(chat_id).mark = len(self.calls)
        self._notify()
        return update

    def _last_update_id(self) -> int:
        if self.state_file is None or not self.state_file.exists():
            return 0
        try:
            return int(json.loads(self.state_file.read_text())["last_update_id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{self.state_file} is not a playground state file: {exc}") from exc

    def _save_update_id(self, update_id: int) -> None:
        if self.state_file is None:
            return
        # Replaced whole, so that a crash mid-write leaves the previous count.
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.state_file.with_suffix(".tmp")
        partial.write_text(json.dumps({"last_update_id": update_id}))
        partial.replace(self.state_file)

    def delete_message(self, chat_id: int, message_id: int) -> None:
        """The person deletes a message for both sides (a private chat allows it): a button
        pressed on it just before reaches the bot, whose edit then finds no message."""
        del self.chat(chat_id).messages[message_id]

    # Reading what the bot did ----------------------------------------------------------

    def calls_in(self, chat_id: int, *, after: int | None = None) -> list[BotCall]:
        start = self.chat(chat_id).mark if after is None else after
        return [c for c in self.calls[start:] if c.chat_id == chat_id]

    async def wait_for(
        self,
        chat_id: int,
        predicate: Callable[[BotCall], bool] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - the documented API other tests use
        *,
        after: int | None = None,
    ) -> BotCall:
        """The first call in the chat after its mark (or after sequence `after`) that matches;
        raises TimeoutError listing what the bot did instead."""
        accept = predicate or (lambda call: call.is_message)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for call in self.calls_in(chat_id, after=after):
                if accept(call):
                    return call
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                seen = self.calls_in(chat_id, after=after)
                raise TimeoutError(f"chat {chat_id}: no matching call in {timeout}s; saw {seen}")
            await self._wait_change(remaining)

    async def collect(self, chat_id: int, seconds: float) -> list[BotCall]:
        """Everything the bot does in the chat (after its mark) within `seconds`."""
        await asyncio.sleep(seconds)
        return self.calls_in(chat_id)

    def message(self, chat_id: int, message_id: int) -> Json:
        """A message as it stands now (edits applied)."""
        return self.chat(chat_id).messages[message_id]

    def fail_next(self, method: str, *, retry_after: int = 1, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with 429 Too Many Requests."""
        error = BotAPIError(429, f"Too Many Requests: retry after {retry_after}", retry_after)
        self._failures.setdefault(method.lower(), []).extend([error] * times)

    def flood(self, chat_id: int, *, retry_after: int) -> None:
        """Flood control for one chat: sends to it answer 429 for `retry_after` seconds."""
        self._floods[chat_id] = time.monotonic() + retry_after

    def stall(self, chat_ids: Iterable[int]) -> None:
        """Sends to these chats hang until `unstall`."""
        self._stalled = set(chat_ids)
        self._unstalled = asyncio.Event()

    def unstall(self, *, deliver: bool = True) -> None:
        """Let the hanging sends through (or fail them with 502, unrecorded); later sends to
        those chats are answered at once."""
        self._stalled = set()
        self._deliver_stalled = deliver
        self._unstalled.set()

    async def _chat_limits(self, method: str, params: Json) -> None:
        """Flood control and stalls, for a call that writes to a chat."""
        if not method.lower().startswith(("send", "edit")):
            return
        try:
            chat_id = int(params["chat_id"])
        except (KeyError, TypeError, ValueError):
            return
        left = self._floods.get(chat_id, 0.0) - time.monotonic()
        if left > 0:
            self.flood_refusals.append((chat_id, method))
            seconds = math.ceil(left)
            raise BotAPIError(429, f"Too Many Requests: retry after {seconds}", seconds)
        if chat_id in self._stalled:
            unstalled = self._unstalled
            await unstalled.wait()
            if not self._deliver_stalled:
                raise BotAPIError(502, "Bad Gateway")

    def hold_downloads(self) -> None:
        """File downloads wait until `release_downloads()`: a handler that downloads a photo
        stays in flight meanwhile (tests of stopping a bot mid-update)."""
        self._downloads_gate = asyncio.Event()

    def release_downloads(self) -> None:
        if self._downloads_gate is not None:
            self._downloads_gate.set()
            self._downloads_gate = None

    async def download_gate(self) -> None:
        gate = self._downloads_gate
        if gate is not None:
            self.held_downloads += 1
            self._notify()
            await gate.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, seconds: float) -> None:
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), seconds)

    # The Bot API ------------------------------------------------------------------------

    def bot_json(self, token: str) -> Json:
        bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1
        return {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Emobot",
            "username": self.bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def call(self, token: str, method: str, params: Json, files: dict[str, Upload]) -> Any:
        """Run one Bot API method; returns its result or raises BotAPIError."""
        self.token = token
        failures = self._failures.get(method.lower())
        if failures:
            raise failures.pop(0)
        await self._chat_limits(method, params)
        handler = getattr(self, f"_m_{method.lower()}", None)
        if handler is None:
            raise BotAPIError(404, "Not Found: method not found")
        try:
            return await handler(token, params, files)
        except (KeyError, ValueError, TypeError) as exc:
            raise BotAPIError(400, f"Bad Request: {exc}") from exc

    def _record(
        self,
        method: str,
        chat_id: int | None,
        params: Json,
        message_id: int | None = None,
        files: dict[str, bytes] | None = None,
    ) -> BotCall:
        call = BotCall(len(self.calls) + 1, method, chat_id, params, message_id, files or {})
        self.calls.append(call)
        log.debug("bot %r", call)
        self._notify()
        return call

    def _bot_message(
        self, token: str, chat_id: int, content: Json, params: Json | None = None
    ) -> Json:
        """A message from the bot, stored in the chat; `params` of the call may make it a reply
        (`reply_parameters` or the older `reply_to_message_id`), as Telegram shows it, and put
        it in a forum topic (`message_thread_id`, or the topic of the message it replies to)."""
        chat = self.chat(chat_id)
        user = self.users.get(chat_id)
        params = params or {}
        replied = params.get("reply_parameters", {}).get("message_id") or params.get(
            "reply_to_message_id"
        )
        thread = params.get("message_thread_id")
        if replied in chat.messages:
            quoted = {k: v for k, v in chat.messages[replied].items() if k != "reply_to_message"}
            content = {**content, "reply_to_message": quoted}
            thread = thread or quoted.get("message_thread_id")
        if chat.info is not None:
            chat_json = chat.info
        else:
            chat_json = user.chat_json() if user else {"id": chat_id, "type": "private"}
        message: Json = {
            "message_id": next(chat.message_ids),
            "date": int(time.time()),
            "chat": chat_json,
            "from": self.bot_json(token),
            **{k: v for k, v in content.items() if v is not None},
        }
        if thread is not None and chat_json.get("is_forum"):
            message["message_thread_id"] = int(thread)
            message["is_topic_message"] = True
        chat.messages[message["message_id"]] = message
        return message

    def _input_file(
        self, value: Any, files: dict[str, Upload], folder: str, suffix: str
    ) -> StoredFile:
        """An uploaded file (`attach://<part>`) or one already known by its file_id."""
        if isinstance(value, str) and value.startswith("attach://"):
            upload = files[value.removeprefix("attach://")]
            return self.store_file(upload.data, folder, suffix, name=upload.name)
        if isinstance(value, str) and value in self.files:
            return self.files[value]
        raise ValueError(f"wrong file identifier/HTTP URL specified: {value!r}")

    @staticmethod
    def _check_entities(params: Json, field: str = "text") -> None:
        """Refuse text that Telegram could not parse in the call's `parse_mode`."""
        text = params.get(field)
        if not text or str(params.get("parse_mode") or "").lower() != "html":
            return
        try:
            check_html(str(text))
        except EntityError as exc:
            raise BotAPIError(400, f"Bad Request: can't parse entities: {exc}") from exc

    async def _m_getme(self, token: str, params: Json, files: dict[str, Upload]) -> Json:
        return self.bot_json(token)

    async def _m_deletewebhook(self, token: str, params: Json, files: dict[str, Upload]) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self.updates.clear()
        return True

    async def _m_setwebhook(self, token: str, params: Json, files: dict[str, Upload]) -> bool:
        self.webhook = params
        return True

    def _commands_key(self, params: Json) -> str:
        """The menu's scope key; a chat scope for a chat the bot has never seen is refused,
        as Telegram refuses it (an admin who never opened the bot, say)."""
        scope = params.get("scope") or {}
        if "chat_id" in scope and scope["chat_id"] not in self.chats:
            raise BotAPIError(400, "Bad Request: chat not found")
        return _scope_key(params.get("scope"), params.get("language_code"))

    async def _m_setmycommands(self, token: str, params: Json, files: dict[str, Upload]) -> bool:
        self.commands[self._commands_key(params)] = params["commands"]
        return True

    async def _m_getmycommands(
        self, token: str, params: Json, files: dict[str, bytes]
    ) -> list[Json]:
        return self.commands.get(self._commands_key(params), [])

    async def _m_deletemycommands(self, token: str, params: Json, files: dict[str, bytes]) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    async def _m_getupdates(self, token: str, params: Json, files: dict[str, Upload]) -> list[Json]:
        if not self.polled:
            self.polled = True
            self._notify()
        offset = params.get("offset")
        if offset:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        limit = params.get("limit") or 100
        timeout = float(params.get("timeout") or 0)
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.updates and (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            await self._wait_change(remaining)
        return self.updates[:limit]

    async def _m_sendmessage(self, token: str, params: Json, files: dict[str, Upload]) -> Json:
        chat_id = int(params["chat_id"])
        if not params.get("text"):
            raise ValueError("message text is empty")
        self._check_entities(params)
        message = self._bot_message(
            token,
            chat_id,
            {"text": params["text"], "reply_markup": params.get("reply_markup")},
            params,
        )
        self._record("sendMessage", chat_id, params, message["message_id"])
        return message

    async def _m_sendphoto(self, token: str, params: Json, files: dict[str, Upload]) -> Json:
        chat_id = int(params["chat_id"])
        self._check_entities(params, "caption")
        stored = self._input_file(params["photo"], files, "photos", ".jpg")
        width, height = image_size(stored.data)
        size = {
            "file_id": stored.file_id,
            "file_unique_id": stored.unique_id,
            "width": width,
            "height": height,
            "file_size": len(stored.data),
        }
        message = self._bot_message(
            token,
            chat_id,
            {
                "photo": [size],
                "caption": params.get("caption"),
                "reply_markup": params.get("reply_markup"),
            },
            params,
        )
        self._record("sendPhoto", chat_id, params, message["message_id"], {"photo": stored.data})
        return message

    async def _m_senddocument(self, token: str, params: Json, files: dict[str, Upload]) -> Json:
        chat_id = int(params["chat_id"])
        self._check_entities(params, "caption")
        stored = self._input_file(params["document"], files, "documents", "")
        document = {
            "file_id": stored.file_id,
            "file_unique_id": stored.unique_id,
            "file_name": stored.name,
            "file_size": len(stored.data),
        }
        message = self._bot_message(
            token,
            chat_id,
            {
                "document": document,
                "caption": params.get("caption"),
                "reply_markup": params.get("reply_markup"),
            },
            params,
        )
        self._record(
            "sendDocument", chat_id, params, message["message_id"], {"document": stored.data}
        )
        return message

    async def _m_sendmediagroup(
        self, token: str, params: Json, files: dict[str, bytes]
    ) -> list[Json]:
        chat_id = int(params["chat_id"])
        group = f"group{next(self._ids)}"
        messages = []
        for item in params["media"]:
            self._check_entities(item, "caption")
        for item in params["media"]:
            stored = self._input_file(item["media"], files, "photos", ".jpg")
            width, height = image_size(stored.data)
            size = {
                "file_id": stored.file_id,
                "file_unique_id": stored.unique_id,
                "width": width,
                "height": height,
                "file_size": len(stored.data),
            }
            message = self._bot_message(
                token,
                chat_id,
                {"photo": [size], "caption": item.get("caption"), "media_group_id": group},
            )
            self._record(
                "sendMediaGroup",
                chat_id,
                {**params, "caption": item.get("caption")},
                message["message_id"],
                {"photo": stored.data},
            )
            messages.append(message)
        return messages

    async def _m_sendchataction(self, token: str, params: Json, files: dict[str, Upload]) -> bool:
        self._record("sendChatAction", int(params["chat_id"]), params)
        return True

    def _existing(self, params: Json) -> tuple[int, Json]:
        """The bot's message an edit names; Telegram's answers when there is none."""
        chat_id = int(params["chat_id"])
        message = self.chat(chat_id).messages.get(int(params["message_id"]))
        if message is None:
            raise BotAPIError(400, "Bad Request: message to edit not found")
        if not message.get("from", {}).get("is_bot"):
            raise BotAPIError(400, "Bad Request: message can't be edited")
        return chat_id, message

    @staticmethod
    def _not_modified() -> BotAPIError:
        return BotAPIError(
            400,
            "Bad Request: message is not modified: specified new message content and reply "
            "markup are exactly the same as a current content and reply markup of the message",
        )

    async def _m_editmessagetext(self, token: str, params: Json, files: dict[str, Upload]) -> Json:
        chat_id, message = self._existing(params)
        self._check_entities(params)
        markup = params.get("reply_markup")
        if "text" not in message:
            raise BotAPIError(400, "Bad Request: there is no text in the message to edit")
        if message.get("text") == params["text"] and message.get("reply_markup") == markup:
            raise self._not_modified()
        message["text"] = params["text"]
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        self._record("editMessageText", chat_id, params, message["message_id"])
        return message

    async def _m_editmessagereplymarkup(
        self, token: str, params: Json, files: dict[str, bytes]
    ) -> Json:
        chat_id, message = self._existing(params)
        if message.get("reply_markup") == params.get("reply_markup"):
            raise self._not_modified()
        if params.get("reply_markup") is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = params["reply_markup"]
        self._record("editMessageReplyMarkup", chat_id, params, message["message_id"])
        return message

    async def _m_editmessagecaption(
        self, token: str, params: Json, files: dict[str, bytes]
    ) -> Json:
        chat_id, message = self._existing(params)
        self._check_entities(params, "caption")
        if "text" in message:
            raise BotAPIError(400, "Bad Request: there is no caption in the message to edit")
        markup = params.get("reply_markup")
        if (
            message.get("caption") == params.get("caption")
            and message.get("reply_markup") == markup
        ):
            raise self._not_modified()
        message["caption"] = params.get("caption")
        # As editMessageText: no reply_markup removes the keyboard.
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        self._record("editMessageCaption", chat_id, params, message["message_id"])
        return message

    async def _m_editmessagemedia(self, token: str, params: Json, files: dict[str, Upload]) -> Json:
        chat_id, message = self._existing(params)
        if "text" in message:
            raise BotAPIError(400, "Bad Request: there is no media in the message to edit")
        media = params["media"]
        if media.get("type") != "photo":
            raise ValueError(f"media of type {media.get('type')!r} is not supported here")
        self._check_entities(media, "caption")
        stored = self._input_file(media["media"], files, "photos", ".jpg")
        width, height = image_size(stored.data)
        message["photo"] = [
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.unique_id,
                "width": width,
                "height": height,
                "file_size": len(stored.data),
            }
        ]
        message.pop("caption", None)
        if media.get("caption"):
            message["caption"] = media["caption"]
        if params.get("reply_markup") is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = params["reply_markup"]
        self._record(
            "editMessageMedia",
            chat_id,
            {**params, "caption": media.get("caption")},
            message["message_id"],
            {"photo": stored.data},
        )
        return message

    async def _m_deletemessage(self, token: str, params: Json, files: dict[str, Upload]) -> bool:
        chat_id = int(params["chat_id"])
        message_id = int(params["message_id"])
        if self.chat(chat_id).messages.pop(message_id, None) is None:
            raise BotAPIError(400, "Bad Request: message to delete not found")
        self._record("deleteMessage", chat_id, params, message_id)
        return True

    async def _m_answercallbackquery(
        self, token: str, params: Json, files: dict[str, bytes]
    ) -> bool:
        query_id = params["callback_query_id"]
        self.callback_answers[query_id] = params
        self._record("answerCallbackQuery", self._query_users.get(query_id), params)
        return True

    async def _m_getfile(self, token: str, params: Json, files: dict[str, Upload]) -> Json:
        stored = self.files.get(params["file_id"])
        if stored is None:
            raise BotAPIError(400, "Bad Request: invalid file_id")
        if len(stored.data) > MAX_DOWNLOAD_BYTES:
            raise BotAPIError(400, "Bad Request: file is too big")
        return stored.info()


def _scope_key(scope: Json | None, language_code: str | None) -> str:
    """`default`, `all_private_chats`, `chat:42`, … plus `/ru` for a language."""
    scope = scope or {"type": "default"}
    key = scope["type"] + (f":{scope['chat_id']}" if "chat_id" in scope else "")
    return key + (f"/{language_code}" if language_code else "")


def _coerce(name: str, value: str) -> Any:
    if name in _INT_PARAMS:
        try:
            return int(value)
        except ValueError:
            return value  # "@channelusername"
    if name in _JSON_PARAMS:
        return json.loads(value)
    if name in _BOOL_PARAMS:
        return value.lower() in ("true", "1")
    return value


async def _read_request(request: web.Request) -> tuple[Json, dict[str, Upload]]:
    """Parameters and uploaded files of a Bot API request, whatever its encoding."""
    params: Json = {}
    files: dict[str, Upload] = {}
    for name, value in request.query.items():
        params[name] = _coerce(name, value)
    if request.content_type == "application/json":
        params.update(await request.json())
    elif request.content_type == "multipart/form-data":
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.filename is not None:
                files[part.name] = Upload(part.filename, await part.read())
            else:
                params[part.name] = _coerce(part.name, await part.text())
    elif request.can_read_body:
        for name, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                files[name] = Upload(value.filename, value.file.read())
            elif isinstance(value, str):
                params[name] = _coerce(name, value)
    # A file sent directly in its parameter (not via attach://) is referenced by name.
    for name in files:
        params.setdefault(name, f"attach://{name}")
    return params, files


def make_app(emulator: BotAPIEmulator) -> web.Application:
    """The aiohttp application: `/bot<token>/<method>` and `/file/bot<token>/<path>`."""

    async def method(request: web.Request) -> web.Response:
        token = request.match_info["token"]
        name = request.match_info["method"]
        try:
            params, files = await _read_request(request)
            result = await emulator.call(token, name, params, files)
        except BotAPIError as exc:
            return web.json_response(exc.payload(), status=exc.code)
        except json.JSONDecodeError as exc:
            return web.json_response(BotAPIError(400, f"Bad Request: {exc}").payload(), status=400)
        return web.json_response({"ok": True, "result": result})

    async def download(request: web.Request) -> web.Response:
        stored = emulator.files_by_path.get(request.match_info["path"])
        if stored is None:
            raise web.HTTPNotFound()
        await emulator.download_gate()
        return web.Response(
            body=stored.data, content_type=stored.mime_type or "application/octet-stream"
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/bot{token}/{method}", method)
    app.router.add_get("/file/bot{token}/{path:.+}", download)
    return app


class BotAPIServer:
    """Serves an emulator over HTTP; `url` is the base for `TelegramAPIServer.from_base`."""

    def __init__(self, emulator: BotAPIEmulator, host: str = "127.0.0.1", port: int = 0):
        self.emulator = emulator
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        # A client that goes away ends its request: a dead bot's long poll must not hold up
        # the server's shutdown for the rest of its timeout.
        self._runner = web.AppRunner(
            make_app(self.emulator), access_log=None, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]  # the free port chosen when port=0

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
