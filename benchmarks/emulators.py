"""The fake Bot API as the load and fault benchmarks watch it: answers stamped as they are
recorded (BotAPIEmulator.observe), each chat's calls kept apart, floods answered."""

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.processes import now
from playground.botapi import BotAPIEmulator, BotAPIError, BotCall, FakeUser, Json

QUEUED_NOTICE = "working on it"  # the bot's "photo received" message (users speak English)
FLOOD_RETRY_AFTER = 5


@dataclass
class Answers:
    """When each user sent and when the answers came, stamped as the fake Bot API records them."""

    sent: dict[int, float] = field(default_factory=dict)
    answered: dict[int, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class TimedEmulator(BotAPIEmulator):
    """The fake Bot API, stamping the worker's answers as they arrive (scanning every chat's
    calls per change would cost more than the platform under test)."""

    def __init__(self, answers: Answers, expected: int) -> None:
        super().__init__()
        self.observe(self._stamp)
        self.answers = answers
        self.expected = expected
        self.all_answered = asyncio.Event()

    def _stamp(self, call: BotCall) -> None:
        chat_id = call.chat_id
        if chat_id in self.answers.sent and call.is_message:
            text = call.text or ""
            if call.method == "sendPhoto" or "%" in text:
                self.answers.answered.setdefault(chat_id, []).append(time.perf_counter())
                if len(self.answers.answered) == self.expected:
                    self.all_answered.set()
            elif QUEUED_NOTICE not in text:
                self.answers.errors.append(f"{chat_id}: {text[:80]}")


class DialogEmulator(BotAPIEmulator):
    """The fake Bot API keeping each chat's calls apart and waking only that chat's waiter
    (one scan of every call per change for 300 waiters would cost more than the bot)."""

    def __init__(self) -> None:
        super().__init__()
        self.observe(self._stamp)
        self.by_chat: dict[int, list[BotCall]] = {}
        self.changed: dict[int, asyncio.Event] = {}

    def _stamp(self, call: BotCall) -> None:
        chat_id = call.chat_id
        if chat_id is not None:
            self.by_chat.setdefault(chat_id, []).append(call)
            self.changed.setdefault(chat_id, asyncio.Event()).set()

    async def next_call(
        self, chat_id: int, accept: "Callable[[BotCall], bool]", after: int, seconds: float
    ) -> tuple[BotCall, int]:
        """The first call in the chat from index `after` on that `accept`s, and the index
        after it; TimeoutError when none comes within `seconds`."""
        async with asyncio.timeout(seconds):
            while True:
                calls = self.by_chat.get(chat_id, [])
                for index in range(after, len(calls)):
                    if accept(calls[index]):
                        return calls[index], index + 1
                event = self.changed.setdefault(chat_id, asyncio.Event())
                event.clear()
                await event.wait()


class Recorder(BotAPIEmulator):
    """The fake Bot API, stamping the answers to photos as they arrive, keeping the error
    replies, and answering 429 once to every prediction for `flood_chat`."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__()
        self.observe(self._stamp)
        self.error_starts = errors
        self.photos: dict[tuple[int, int], float] = {}  # (chat, message) -> sent
        self.answers: dict[tuple[int, int], list[float]] = {}
        self.unmatched: list[tuple[int, float]] = []  # predictions not replying to a photo
        self.errors: list[tuple[int, float, str]] = []
        self.flood_chat: int | None = None
        self.flooded: set[str] = set()

    async def call(self, token: str, method: str, params: Json, files: Any) -> Any:
        name = method.lower()
        text = str(params.get("text") or params.get("caption") or "")
        if (
            self.flood_chat is not None
            and (name == "sendphoto" or (name == "sendmessage" and "%" in text))  # predictions
            and str(params.get("chat_id")) == str(self.flood_chat)
        ):
            # One message's first attempt: its text and what it replies to name it.
            key = json.dumps(
                [name, params.get("reply_parameters"), params.get("text"), params.get("caption")],
                default=str,
            )
            if key not in self.flooded:
                self.flooded.add(key)
                raise BotAPIError(
                    429,
                    f"Too Many Requests: retry after {FLOOD_RETRY_AFTER}",
                    FLOOD_RETRY_AFTER,
                )
        return await super().call(token, method, params, files)

    def _stamp(self, call: BotCall) -> None:
        chat_id, params = call.chat_id, call.params
        if chat_id is None or not call.is_message:
            return
        text = call.text or ""
        stamp = now()
        if any(text.startswith(start) for start in self.error_starts):
            self.errors.append((chat_id, stamp, text[:80]))
        elif call.method == "sendPhoto" or "%" in text:  # a prediction
            reply = params.get("reply_parameters") or {}
            if isinstance(reply, str):
                reply = json.loads(reply)
            key = (chat_id, reply.get("message_id") or params.get("reply_to_message_id"))
            if key in self.photos:
                self.answers.setdefault(key, []).append(stamp)  # type: ignore[arg-type]
            else:
                self.unmatched.append((chat_id, stamp))

    def send_photo(self, user: FakeUser, data: bytes) -> None:
        message = user.send_photo(data)
        self.photos[(user.id, message["message_id"])] = now()
