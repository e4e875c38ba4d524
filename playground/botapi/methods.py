"""The Bot API methods the bot and the worker use, over the emulator's state."""

import asyncio
import json
from typing import Any

from playground.botapi.records import (
    MAX_DOWNLOAD_BYTES,
    REACTION_EMOJI,
    BotAPIError,
    Json,
    Upload,
)
from playground.botapi.state import EmulatorState


class BotAPIEmulator(EmulatorState):
    """The fake Bot API: the emulator's state and the methods a bot calls on it."""

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
        size = stored.photo_size()
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
            size = stored.photo_size()
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
        message["photo"] = [stored.photo_size()]
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

    async def _m_setmessagereaction(
        self, token: str, params: Json, files: dict[str, Upload]
    ) -> bool:
        """A reaction on a message of the chat: Telegram takes only emoji from its own list."""
        chat_id = int(params["chat_id"])
        message = self.chat(chat_id).messages.get(int(params["message_id"]))
        if message is None:
            raise BotAPIError(400, "Bad Request: message to react not found")
        reaction = params.get("reaction") or []
        if isinstance(reaction, str):
            reaction = json.loads(reaction)
        for item in reaction:
            if item.get("type") == "emoji" and item.get("emoji") not in REACTION_EMOJI:
                raise BotAPIError(400, "Bad Request: REACTION_INVALID")
        if reaction:
            message["reactions"] = reaction
        else:
            message.pop("reactions", None)
        self._record("setMessageReaction", chat_id, params, message["message_id"])
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
