"""The operations endpoint every process serves on METRICS_PORT: Prometheus metrics, liveness
and readiness, on a small aiohttp server beside the process's own work.

- `/metrics`: prometheus_client's default registry, in the format the scraper asks for;
- `/healthz`: 200 as long as the event loop answers (the process is alive);
- `/readyz`: 200 when every readiness check passes, 503 naming the failing ones otherwise.

A check is a coroutine function that raises when its dependency is not usable; each gets
CHECK_TIMEOUT_S, so that an unreachable database makes the process unready, not the probe hang.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[object]]
CHECK_TIMEOUT_S = 3.0


async def _run_check(check: Check) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await check()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
    return "ok"


def make_app(
    checks: Mapping[str, Check], before_scrape: Sequence[Callable[[], Awaitable[None]]] = ()
) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        for refresh in before_scrape:
            await refresh()
        encoder, content_type = choose_encoder(request.headers.get("Accept"))
        response = web.Response(body=encoder(REGISTRY))
        response.headers["Content-Type"] = content_type
        return response

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        names = list(checks)
        results = await asyncio.gather(*(_run_check(checks[name]) for name in names))
        report = dict(zip(names, results, strict=True))
        ready = all(result == "ok" for result in results)
        return web.json_response(
            {"status": "ready" if ready else "unready", "checks": report},
            status=200 if ready else 503,
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


@asynccontextmanager
async def serve_operations(
    port: int | None,
    checks: Mapping[str, Check],
    before_scrape: Sequence[Callable[[], Awaitable[None]]] = (),
) -> AsyncIterator[None]:
    """Serve the endpoints on `port` (all interfaces: probes and scrapers come from outside the
    pod or container) for the duration of the block; no server when `port` is None."""
    if port is None:
        yield
        return
    runner = web.AppRunner(make_app(checks, before_scrape), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "0.0.0.0", port).start()
        log.info("metrics and health checks on port %d", port)
        yield
    finally:
        await runner.cleanup()
