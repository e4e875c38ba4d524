"""The playground: the fake Bot API (`playground.botapi`) plus a web chat page, on one port.

The bot and the worker talk to `/bot<token>/<method>` as they would to Telegram; a person
chats with them at `/` as the one local user. The page's own endpoints:

- `GET /api/chat?since=<version>`: the chat (messages with edits applied, oldest first) and
  its version; waits up to 25 s for a change when `since` is the current version.
- `POST /api/send` `{"text": …}`: a text message (or command).
- `POST /api/photos` multipart `photo` parts: one photo, or an album when several.
- `POST /api/press` `{"message_id": …, "data": …}`: an inline button.
- `GET /api/files/<file_id>`: a photo or document from the chat.
"""

import asyncio
import hashlib
import io
import json
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from PIL import Image, UnidentifiedImageError

from playground.botapi import BotAPIEmulator, FakeUser, make_app

STATIC = Path(__file__).parent / "static"
LONG_POLL_SECONDS = 25.0
POLL_INTERVAL_SECONDS = 0.2


def chat_snapshot(emulator: BotAPIEmulator, user: FakeUser) -> dict[str, Any]:
    """What the page shows: the messages, whether the bot is 'typing' (its latest action in
    the chat is a chat action), the latest button notice (with its number, so the page shows
    each once), whether the bot has started polling, and the user's command menu."""
    messages = [emulator.chat(user.id).messages[k] for k in sorted(emulator.chat(user.id).messages)]
    calls = [c for c in emulator.calls if c.chat_id == user.id]
    typing = bool(calls) and calls[-1].method == "sendChatAction"
    answers = [c for c in calls if c.method == "answerCallbackQuery" and c.params.get("text")]
    notice = {"id": answers[-1].seq, "text": answers[-1].params["text"]} if answers else None
    body = {
        "messages": messages,
        "typing": typing,
        "notice": notice,
        "bot_ready": emulator.polled,
        "commands": user_commands(emulator, user),
    }
    version = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return {**body, "version": version[:16]}


def user_commands(emulator: BotAPIEmulator, user: FakeUser) -> list[dict[str, str]]:
    """The menu Telegram would show this user: the most specific scope the bot set, in the
    user's language when there is one for it (setMyCommands)."""
    lang = (user.language_code or "")[:2]
    for scope in (f"chat:{user.id}", "all_private_chats", "default"):
        for key in (f"{scope}/{lang}", scope):
            if emulator.commands.get(key):
                return emulator.commands[key]
    return []


# Telegram's limits for a photo (bigger ones must be sent as files).
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_PHOTO_SIDES = 10_000  # width + height
MAX_PHOTO_RATIO = 20


def photo_problem(name: str, data: bytes) -> str | None:
    """Why Telegram would refuse these bytes as a photo, or None."""
    if len(data) > MAX_PHOTO_BYTES:
        return f"{name} is {len(data) / 2**20:.1f} MB: a photo can be at most 10 MB"
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        return f"{name} has too many pixels to be a photo"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return f"{name} is not an image"
    if width + height > MAX_PHOTO_SIDES or max(width, height) > MAX_PHOTO_RATIO * min(
        width, height
    ):
        return (
            f"{name} is {width}×{height} pixels: a photo's width and height can add up to "
            f"{MAX_PHOTO_SIDES} at most, one side at most {MAX_PHOTO_RATIO} times the other"
        )
    return None


def make_web_app(emulator: BotAPIEmulator, user: FakeUser) -> web.Application:
    """The Bot API routes of `make_app` plus the chat page and its endpoints."""
    app = make_app(emulator)

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def chat(request: web.Request) -> web.Response:
        since = request.query.get("since")
        deadline = asyncio.get_running_loop().time() + LONG_POLL_SECONDS
        snapshot = chat_snapshot(emulator, user)
        while snapshot["version"] == since and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(POLL_INTERVAL_SECONDS)
            snapshot = chat_snapshot(emulator, user)
        return web.json_response(snapshot)

    def language(request: web.Request) -> None:
        # The browser's language plays Telegram's `language_code` of the local user.
        lang = request.headers.get("Accept-Language", "")[:2].lower()
        user.language_code = lang if lang.isalpha() else user.language_code

    async def send(request: web.Request) -> web.Response:
        try:
            text = str((await request.json())["text"]).strip()
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'send {"text": "…"}'}, status=400)
        if not text:
            return web.json_response({"error": "empty message"}, status=400)
        language(request)
        return web.json_response(user.send_text(text))

    async def photos(request: web.Request) -> web.Response:
        if request.content_type != "multipart/form-data":
            return web.json_response({"error": "send photos as multipart/form-data"}, status=400)
        images: list[bytes] = []
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader) and part.filename is not None:
                data = await part.read()
                if problem := photo_problem(part.filename, data):
                    return web.json_response({"error": problem}, status=413)
                images.append(data)
        if not images:
            return web.json_response({"error": "no photo in the request"}, status=400)
        language(request)
        sent = user.send_album(images) if len(images) > 1 else [user.send_photo(images[0])]
        return web.json_response(sent)

    async def press(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            query = user.press(
                int(body["message_id"]), data=body.get("data"), text=body.get("text")
            )
        except (ValueError, KeyError, TypeError, LookupError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(query)

    async def file(request: web.Request) -> web.Response:
        stored = emulator.files.get(request.match_info["file_id"])
        if stored is None:
            raise web.HTTPNotFound()
        headers = {}
        if stored.name:
            headers["Content-Disposition"] = f'inline; filename="{stored.name}"'
        content_type = stored.mime_type or (
            "image/jpeg" if stored.path.startswith("photos/") else "application/octet-stream"
        )
        return web.Response(body=stored.data, content_type=content_type, headers=headers)

    app.router.add_get("/", index)
    app.router.add_get("/api/chat", chat)
    app.router.add_post("/api/send", send)
    app.router.add_post("/api/photos", photos)
    app.router.add_post("/api/press", press)
    app.router.add_get("/api/files/{file_id}", file)
    app.router.add_static("/static/", STATIC)
    return app


class Playground:
    """The emulator and the page served on `host:port` (0 picks a free port)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        user_id: int = 1,
        state_dir: Path | None = None,
    ):
        """`state_dir` (under the data dir) keeps what must survive a restart: the update
        counter, since the bot ignores update ids it has already seen."""
        self.host = host
        self.port = port
        state_file = state_dir / "botapi.json" if state_dir is not None else None
        self.emulator = BotAPIEmulator(state_file=state_file)
        self.user = self.emulator.user(user_id, "You", language_code="en", username="you")
        self._runner: web.AppRunner | None = None

    @property
    def api_url(self) -> str:
        """The Bot API base URL for TELEGRAM_API_URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def page_url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def start(self) -> None:
        # Stopping waits this long for requests in hand: the page's long poll (25 s) is cut
        # short rather than holding up Ctrl-C.
        self._runner = web.AppRunner(
            make_web_app(self.emulator, self.user), access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
