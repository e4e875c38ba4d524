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

The modules: `server` (HTTP), `methods` (the Bot API methods, `BotAPIEmulator`), `state` (chats,
updates, files, calls, faults), `user` (`FakeUser`), `records` (what is kept and answered).
"""

from playground.botapi.methods import BotAPIEmulator
from playground.botapi.records import (
    MAX_DOWNLOAD_BYTES,
    BotAPIError,
    BotCall,
    Chat,
    Json,
    StoredFile,
    Upload,
    image_size,
)
from playground.botapi.server import BotAPIServer, make_app
from playground.botapi.state import EmulatorState
from playground.botapi.user import FakeUser

__all__ = [
    "MAX_DOWNLOAD_BYTES",
    "BotAPIEmulator",
    "BotAPIError",
    "BotAPIServer",
    "BotCall",
    "Chat",
    "EmulatorState",
    "FakeUser",
    "Json",
    "StoredFile",
    "Upload",
    "image_size",
    "make_app",
]
