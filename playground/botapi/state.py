"""The emulator's state: chats, updates, files, the bot's calls, and the faults a test
sets (failures, floods, stalls, held downloads)."""

import asyncio
import contextlib
import copy
import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from playground.botapi.records import (
    BotAPIError,
    BotCall,
    Chat,
    Json,
    StoredFile,
    Upload,
)
from playground.botapi.user import FakeUser
from playground.groups import FakeGroup
from playground.parse_mode import EntityError, check_html

log = logging.getLogger(__name__)


class EmulatorState:
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
        self._observers: list[Callable[[BotCall], None]] = []

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
        return self.store_file(data, "photos", ".jpg", "image/jpeg").photo_size()

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

    def observe(self, observer: Callable[[BotCall], None]) -> None:
        """Have `observer` called with every call the bot makes, as it is recorded, before
        anyone waiting is woken: a benchmark stamps answers as they come rather than scanning
        every chat's calls at each change."""
        self._observers.append(observer)

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
        for observer in self._observers:
            observer(call)
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
