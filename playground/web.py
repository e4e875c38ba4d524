"""The playground: the fake Bot API (`playground.botapi`) plus a web chat page, on one port.

The bot and the worker talk to `/bot<token>/<method>` as they would to Telegram; a person
chats with them at `/` as the one local user, in a private chat and in a group chat (its own
chat id; the other members, simulated, can be sent as). The page's own endpoints, where
`chat=group` picks the group (the private chat otherwise) and `as=<member id>` who sends
there:

- `GET /api/chat?since=<version>[&chat=group]`: the chat (messages with edits applied, oldest
  first) and its version; waits up to 25 s for a change when `since` is the current version.
- `POST /api/send` `{"text": …[, "chat": "group", "as": id]}`: a text message (or command).
- `POST /api/photos[?chat=group&as=id&caption=…]` multipart `photo` parts: one photo, or an
  album (in the group, each photo with the caption).
- `POST /api/clip` multipart `clip` part: a clip, sent as Telegram would deliver it: a GIF as
  an animation, a square video as a round video note, any other video as a video.
- `POST /api/press` `{"message_id": …, "data": …}`: an inline button (private chat).
- `GET /api/files/<file_id>`: a photo or document from a chat.
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
from playground.groups import FakeGroup

STATIC = Path(__file__).parent / "static"
LONG_POLL_SECONDS = 25.0
POLL_INTERVAL_SECONDS = 0.2


def chat_snapshot(
    emulator: BotAPIEmulator, user: FakeUser, group: FakeGroup | None = None
) -> dict[str, Any]:
    """What the page shows of the private chat, or of `group`: the messages, whether the bot
    is 'typing' (its latest action in the chat is a chat action), the latest button notice
    (with its number, so the page shows each once), whether the bot has started polling, the
    command menu, and the group's title and members."""
    chat_id = group.id if group is not None else user.id
    messages = [emulator.chat(chat_id).messages[k] for k in sorted(emulator.chat(chat_id).messages)]
    calls = [c for c in emulator.calls if c.chat_id == chat_id]
    typing = bool(calls) and calls[-1].method == "sendChatAction"
    answers = [c for c in calls if c.method == "answerCallbackQuery" and c.params.get("text")]
    notice = {"id": answers[-1].seq, "text": answers[-1].params["text"]} if answers else None
    body = {
        "messages": messages,
        "typing": typing,
        "notice": notice,
        "bot_ready": emulator.polled,
        "commands": user_commands(emulator, user, group=group is not None),
        "title": group.title if group is not None else None,
        "bot_username": emulator.bot_username,
        "me": user.id,
        "members": [{"id": m.id, "name": m.first_name} for m in group_members(emulator, user)]
        if group is not None
        else [],
    }
    version = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return {**body, "version": version[:16]}


def user_commands(
    emulator: BotAPIEmulator, user: FakeUser, *, group: bool = False
) -> list[dict[str, str]]:
    """The menu Telegram would show this user (in a group chat when `group`): the most
    specific scope the bot set, in the user's language when there is one for it."""
    lang = (user.language_code or "")[:2]
    scopes = (
        ("all_group_chats", "default")
        if group
        else (f"chat:{user.id}", "all_private_chats", "default")
    )
    for scope in scopes:
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


# The group chat's simulated members besides the local user: (id, first name, language).
SIMULATED_MEMBERS = ((2, "Alice", "en"), (3, "Борис", "ru"))


def group_members(emulator: BotAPIEmulator, user: FakeUser) -> list[FakeUser]:
    return [user, *(emulator.users[member_id] for member_id, _, _ in SIMULATED_MEMBERS)]


# Telegram's limit for a video a person sends (bots then download at most 20 MB of it).
MAX_CLIP_BYTES = 2 * 1024**3
VIDEO_NOTE_MAX_SIDE = 640


def clip_shape(data: bytes) -> tuple[int, int, int]:
    """Width, height and whole seconds of a clip, as Telegram reports them; zeros when its
    header cannot be read (the bot then finds out what it is)."""
    import av  # only when a clip is sent: the page's server starts without it

    try:
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            seconds = (container.duration or 0) / 1_000_000
            return stream.codec_context.width, stream.codec_context.height, round(seconds)
    except (av.error.FFmpegError, IndexError, ValueError, OSError):
        return 0, 0, 0


def send_clip(user: FakeUser, name: str, content_type: str, data: bytes) -> dict[str, Any]:
    """A GIF as an animation, a small square video as a video note, anything else a video."""
    width, height, seconds = clip_shape(data)
    if content_type == "image/gif" or name.lower().endswith(".gif"):
        return user.send_animation(data, seconds, file_name=name, mime_type="image/gif")
    if width and width == height and width <= VIDEO_NOTE_MAX_SIDE:
        return user.send_video_note(data, seconds)
    return user.send_video(data, seconds)


def make_web_app(
    emulator: BotAPIEmulator, user: FakeUser, group: FakeGroup | None = None
) -> web.Application:
    """The Bot API routes of `make_app` plus the chat page and its endpoints."""
    app = make_app(emulator)

    def chosen_group(value: object) -> FakeGroup | None:
        return group if value == "group" else None

    def sender(value: object) -> FakeUser:
        """The group member sending (the local user unless another member is picked)."""
        try:
            member_id = int(str(value))
        except ValueError:
            return user
        members = {m.id: m for m in group_members(emulator, user)}
        return members.get(member_id, user)

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def chat(request: web.Request) -> web.Response:
        since = request.query.get("since")
        deadline = asyncio.get_running_loop().time() + LONG_POLL_SECONDS
        shown = chosen_group(request.query.get("chat"))
        snapshot = chat_snapshot(emulator, user, shown)
        while snapshot["version"] == since and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(POLL_INTERVAL_SECONDS)
            snapshot = chat_snapshot(emulator, user, shown)
        return web.json_response(snapshot)

    def language(request: web.Request) -> None:
        # The browser's language plays Telegram's `language_code` of the local user.
        lang = request.headers.get("Accept-Language", "")[:2].lower()
        user.language_code = lang if lang.isalpha() else user.language_code

    async def send(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            text = str(body["text"]).strip()
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'send {"text": "…"}'}, status=400)
        if not text:
            return web.json_response({"error": "empty message"}, status=400)
        language(request)
        if (target := chosen_group(body.get("chat"))) is not None:
            return web.json_response(target.send_text(sender(body.get("as")), text))
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
        if (target := chosen_group(request.query.get("chat"))) is not None:
            member = sender(request.query.get("as"))
            caption = request.query.get("caption") or None
            sent = [target.send_photo(member, data, caption=caption) for data in images]
            return web.json_response(sent)
        sent = user.send_album(images) if len(images) > 1 else [user.send_photo(images[0])]
        return web.json_response(sent)

    async def clip(request: web.Request) -> web.Response:
        if request.content_type != "multipart/form-data":
            return web.json_response({"error": "send the clip as multipart/form-data"}, status=400)
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader) and part.filename is not None:
                data = await part.read()
                if len(data) > MAX_CLIP_BYTES:
                    return web.json_response({"error": f"{part.filename} is over 2 GB"}, status=413)
                language(request)
                content_type = part.headers.get("Content-Type", "")
                return web.json_response(send_clip(user, part.filename, content_type, data))
        return web.json_response({"error": "no clip in the request"}, status=400)

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
    app.router.add_post("/api/clip", clip)
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
        for member_id, name, lang in SIMULATED_MEMBERS:
            self.emulator.user(member_id, name, language_code=lang)
        # Its own chat id; Telegram's privacy mode on, as for any bot by default.
        self.group = self.emulator.group(-1001, "Playground group")
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
            make_web_app(self.emulator, self.user, self.group),
            access_log=None,
            shutdown_timeout=1.0,
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
