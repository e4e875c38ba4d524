"""A small Bot API client for the processes that only send (the worker, the trainer).

aiogram costs each process that imports it about 150 MB: pydantic-core builds a validator and a
serializer for each of its ~300 types at import (aiogram issue #1513), whichever one uses. The
bot needs aiogram's Dispatcher; the worker and the trainer send a handful of methods and read
nothing back but a message id, so they talk to the Bot API through this module (aiohttp and the
standard library only).

The methods mirror aiogram's `Bot` (names, keyword arguments, the exceptions' names and the way
an error answer maps to them), with plain dicts for the API's objects (`reply_parameters`,
`reply_markup`, `media`, `reaction`) and `BufferedInputFile` for an upload. Requests go out as
aiogram sends them: form fields, objects and numbers as JSON, every file a multipart part named
by an `attach://` reference.
"""

import itertools
import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import aiohttp

TELEGRAM_API = "https://api.telegram.org"
# aiogram's default: a request Telegram has not answered in a minute is a network error.
REQUEST_TIMEOUT_SECONDS = 60.0

Json = dict[str, Any]


@dataclass(frozen=True)
class BufferedInputFile:
    """A file to upload, from memory."""

    data: bytes
    filename: str


@dataclass(frozen=True)
class Message:
    """What the callers read of a message sent or edited."""

    message_id: int
    chat_id: int

    @classmethod
    def from_json(cls, message: Json) -> "Message":
        return cls(message["message_id"], message["chat"]["id"])


class TelegramAPIError(Exception):
    """An error answer from the Bot API, or no answer at all."""

    def __init__(self, method: str, message: str):
        super().__init__(f"{method}: {message}")
        self.method = method
        self.message = message


class TelegramNetworkError(TelegramAPIError):
    """The Bot API could not be reached, or did not answer in time."""


class TelegramRetryAfter(TelegramAPIError):
    """Flood control: nothing more is taken (for this chat) for `retry_after` seconds."""

    def __init__(self, method: str, message: str, retry_after: int):
        super().__init__(method, message)
        self.retry_after = retry_after


class TelegramBadRequest(TelegramAPIError):
    """400: the request itself is wrong (chat not found, message to edit gone, bad HTML)."""


class TelegramUnauthorizedError(TelegramAPIError):
    """401: a wrong token."""


class TelegramForbiddenError(TelegramAPIError):
    """403: the bot may not write there (blocked by the person, kicked from the group)."""


class TelegramNotFound(TelegramAPIError):
    """404."""


class TelegramServerError(TelegramAPIError):
    """5xx: Telegram's own trouble."""


_BY_STATUS: dict[int, type[TelegramAPIError]] = {
    HTTPStatus.BAD_REQUEST: TelegramBadRequest,
    HTTPStatus.UNAUTHORIZED: TelegramUnauthorizedError,
    HTTPStatus.FORBIDDEN: TelegramForbiddenError,
    HTTPStatus.NOT_FOUND: TelegramNotFound,
}


def _error(method: str, status: int, answer: Json) -> TelegramAPIError:
    """The exception for an error answer, chosen as aiogram chooses it: flood control by its
    `parameters.retry_after` whatever the status, then by the HTTP status."""
    description = str(answer.get("description") or HTTPStatus(status).phrase)
    retry_after = (answer.get("parameters") or {}).get("retry_after")
    if retry_after:
        return TelegramRetryAfter(method, description, int(retry_after))
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return TelegramServerError(method, description)
    return _BY_STATUS.get(status, TelegramAPIError)(method, description)


def form_data(fields: Json) -> aiohttp.FormData:
    """The request's body: strings as they are, anything else as JSON (numbers, booleans, the
    API's objects, with their None fields left out), each file in a part of its own that the
    field references as `attach://<part>` (also inside `media` lists)."""
    files: dict[str, BufferedInputFile] = {}
    names = (f"file{n}" for n in itertools.count())

    def prepared(value: Any) -> Any:
        if isinstance(value, BufferedInputFile):
            name = next(names)
            files[name] = value
            return f"attach://{name}"
        if isinstance(value, dict):
            return {k: prepared(v) for k, v in value.items() if v is not None}
        if isinstance(value, list | tuple):
            return [prepared(v) for v in value]
        return value

    form = aiohttp.FormData(quote_fields=False)
    for key, value in fields.items():
        if value is None:
            continue
        value = prepared(value)
        form.add_field(key, value if isinstance(value, str) else json.dumps(value))
    for name, file in files.items():
        form.add_field(name, file.data, filename=file.filename)
    return form


class BotSession:
    """The HTTP side: one aiohttp session (opened at the first request) to one Bot API server."""

    def __init__(self, base_url: str = TELEGRAM_API, timeout: float = REQUEST_TIMEOUT_SECONDS):
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None

    async def request(self, token: str, method: str, fields: Json) -> Any:
        """The method's `result`, or the TelegramAPIError its answer means."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=self.timeout)
        url = f"{self.base_url}/bot{token}/{method}"
        try:
            async with self._http.post(url, data=form_data(fields)) as response:
                status, body = response.status, await response.text()
        except TimeoutError as exc:
            raise TelegramNetworkError(method, "Request timeout error") from exc
        except aiohttp.ClientError as exc:
            raise TelegramNetworkError(method, f"{type(exc).__name__}: {exc}") from exc
        try:
            answer = json.loads(body)
        except ValueError:
            # Not the Bot API's answer (a proxy's error page): trying again later may work.
            raise TelegramServerError(method, f"HTTP {status}: {body[:200]}") from None
        if HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES and answer.get("ok"):
            return answer["result"]
        raise _error(method, status, answer)

    async def close(self) -> None:
        if self._http is not None and not self._http.closed:
            await self._http.close()


class BotClient:
    """The Bot API methods the worker and the trainer send, named as aiogram's `Bot` names
    them. `session.close()` ends it."""

    def __init__(self, token: str, session: BotSession | None = None):
        self.token = token
        self.session = session or BotSession()

    async def _call(self, method: str, **fields: Any) -> Any:
        return await self.session.request(self.token, method, fields)

    async def send_message(
        self,
        chat_id: int | str,
        text: str,
        *,
        message_thread_id: int | None = None,
        parse_mode: str | None = None,
        disable_notification: bool | None = None,
        reply_parameters: Json | None = None,
        reply_markup: Json | None = None,
    ) -> Message:
        sent = await self._call(
            "sendMessage",
            chat_id=chat_id,
            message_thread_id=message_thread_id,
            text=text,
            parse_mode=parse_mode,
            disable_notification=disable_notification,
            reply_parameters=reply_parameters,
            reply_markup=reply_markup,
        )
        return Message.from_json(sent)

    async def send_photo(
        self,
        chat_id: int | str,
        photo: BufferedInputFile | str,
        *,
        message_thread_id: int | None = None,
        caption: str | None = None,
        parse_mode: str | None = None,
        disable_notification: bool | None = None,
        reply_parameters: Json | None = None,
        reply_markup: Json | None = None,
    ) -> Message:
        """`photo`: an upload, or the file_id of a photo Telegram has."""
        sent = await self._call(
            "sendPhoto",
            chat_id=chat_id,
            message_thread_id=message_thread_id,
            photo=photo,
            caption=caption,
            parse_mode=parse_mode,
            disable_notification=disable_notification,
            reply_parameters=reply_parameters,
            reply_markup=reply_markup,
        )
        return Message.from_json(sent)

    async def send_media_group(
        self,
        chat_id: int | str,
        media: list[Json],
        *,
        message_thread_id: int | None = None,
        disable_notification: bool | None = None,
        reply_parameters: Json | None = None,
    ) -> list[Message]:
        """`media`: InputMedia objects, e.g. `{"type": "photo", "media": BufferedInputFile(…),
        "caption": …}`."""
        sent = await self._call(
            "sendMediaGroup",
            chat_id=chat_id,
            message_thread_id=message_thread_id,
            media=media,
            disable_notification=disable_notification,
            reply_parameters=reply_parameters,
        )
        return [Message.from_json(message) for message in sent]

    async def edit_message_text(
        self,
        text: str,
        *,
        chat_id: int | str | None = None,
        message_id: int | None = None,
        inline_message_id: str | None = None,
        parse_mode: str | None = None,
        reply_markup: Json | None = None,
    ) -> Message | bool:
        """The edited message; True for an inline message (Telegram's answer then)."""
        edited = await self._call(
            "editMessageText",
            chat_id=chat_id,
            message_id=message_id,
            inline_message_id=inline_message_id,
            text=text,
            parse_mode=parse_mode,
            reply_markup=reply_markup,
        )
        return edited if isinstance(edited, bool) else Message.from_json(edited)

    async def set_message_reaction(
        self,
        chat_id: int | str,
        message_id: int,
        reaction: list[Json] | None = None,
        is_big: bool | None = None,
    ) -> bool:
        """`reaction`: ReactionType objects, e.g. `[{"type": "emoji", "emoji": "👍"}]`; none
        takes the bot's reaction away."""
        return bool(
            await self._call(
                "setMessageReaction",
                chat_id=chat_id,
                message_id=message_id,
                reaction=reaction,
                is_big=is_big,
            )
        )
