"""The HTTP side: `/bot<token>/<method>` and `/file/bot<token>/<path>` over an emulator,
requests in any encoding aiogram or a browser sends."""

import json
from types import TracebackType
from typing import Any, Self

from aiohttp import BodyPartReader, web

from playground.botapi.methods import BotAPIEmulator
from playground.botapi.records import BotAPIError, Json, Upload

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
        "reaction",
    }
)
_BOOL_PARAMS = frozenset({"show_alert", "drop_pending_updates", "disable_notification"})


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
