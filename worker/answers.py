"""The answer policy applied: what a worker does with each request of a batch."""

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from db import queue
from db.engine import Storage
from emobot.feedback import answer_buttons
from emobot.i18n import t
from emobot.settings import Settings
from runtime.botclient import BotClient
from worker import metrics
from worker.job import Job
from worker.outage import DatabaseWatch
from worker.policy import Action, Problem, decide
from worker.replies import Flooded, Reply, SendFailed, Undeliverable, send_reaction, send_reply
from worker.reply_log import ReplyLog

log = logging.getLogger("worker")

# A request that failed for a passing reason (storage or Telegram unreachable) waits this long
# per attempt made before it is claimed again.
RETRY_DELAY_S = 2.0

T = TypeVar("T")


class Answering:
    """How each request of a batch is answered once the model is done: replied to, retried,
    deferred for a flood wait, failed with an apology or dropped, as worker.policy decides.
    Mixed into Worker, which owns the state declared here."""

    settings: Settings
    bot: BotClient
    name: str
    storage: Storage
    database: DatabaseWatch
    _floods: dict[int, float]  # chat id -> time.monotonic() its flood wait ends
    _replies: ReplyLog

    async def _db(self, step: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `step` in a transaction of its own; while PostgreSQL is unreachable, wait for it
        and run it again (the steps are idempotent: a commit whose outcome was lost is
        harmless to repeat)."""

        async def once() -> T:
            async with self.storage.sessions.begin() as session:
                return await step(session)

        return await self.database.run(once)

    async def _answer(self, job: Job, over: bool) -> None:
        request = job.request
        last_try = request.attempts >= self.settings.max_attempts
        counted = True  # whether this attempt counts (see DEFER)
        if over:
            problem, detail = Problem.OVER_ATTEMPTS, None
        elif job.retry is not None:
            problem, detail = Problem.PASSING, job.retry
        elif job.failure is not None:
            problem, detail = Problem.PHOTO, job.failure
        elif (wait := self._flood_wait(request.chat_id)) is not None:
            # An earlier send to this chat was told to wait: do not knock again before then.
            # Nothing was tried, so the attempt is not counted.
            job.flood_wait, counted, last_try = wait, False, False
            problem, detail = Problem.FLOODED, f"flood control: the chat waits {wait} s"
        else:
            problem, detail = await self._send_answer(job)
        if job.flood_wait is not None and job.flood_wait > self.settings.flood_wait_max_seconds:
            last_try = True  # longer than an answer is worth waiting for
        decision = decide(problem, last_try, job.failure_text)
        answered_nothing = decision.action is Action.REPLY and job.found_nothing
        metrics.REQUESTS.labels("no_face" if answered_nothing else decision.outcome).inc()
        match decision.action:
            case Action.REPLY:
                await self._answered(job)
            case Action.RETRY:
                await self._retry(job, detail or "")
            case Action.DEFER:
                assert job.flood_wait is not None
                await self._retry(job, detail or "", delay_s=job.flood_wait, counted=counted)
            case Action.FAIL:
                if decision.outcome == "gave_up":
                    given_up = f"gave up after {self.settings.max_attempts} attempts"
                    detail = f"{given_up}; last: {detail}" if detail else given_up
                assert decision.text is not None
                await self._fail(job, detail or "", Reply(t(job.lang, job.texts + decision.text)))
            case Action.DROP:
                await self._mark_failed(request.id, detail or "", replied=False)

    async def _send_answer(self, job: Job) -> tuple[Problem | None, str | None]:
        """Send the job's answer; the problem sending it, if any."""
        assert job.result is not None
        # Stored with the result: a retry answers as the model that classified it would.
        unsure_below = job.result.get("unsure_below", self.settings.unsure_below)
        reply = await asyncio.to_thread(job.compose, unsure_below)
        request = job.request
        # Feedback buttons in private chats only (a private chat's id is its person's id): in
        # a group they would be for everyone to press.
        markup = (
            answer_buttons(job.lang, request.id)
            if job.feedback and request.chat_id == request.user_id and not job.found_nothing
            else None
        )
        try:
            await send_reply(
                self.bot,
                request.chat_id,
                request.message_id,
                reply,
                thread_id=request.thread_id,
                reply_markup=markup,
            )
        except Undeliverable as exc:
            return Problem.UNDELIVERABLE, f"undeliverable: {exc}"
        except Flooded as exc:
            job.flood_wait = exc.retry_after
            self._floods[job.request.chat_id] = time.monotonic() + exc.retry_after
            return Problem.FLOODED, f"send failed: {exc}"
        except SendFailed as exc:
            return Problem.SEND_FAILED, f"send failed: {exc}"
        emoji = job.reaction(unsure_below)
        if emoji is not None and request.message_id is not None:
            await send_reaction(self.bot, request.chat_id, request.message_id, emoji)
        return None, None

    def _flood_wait(self, chat_id: int) -> int | None:
        """Whole seconds left of the chat's flood wait, if it has one."""
        now = time.monotonic()
        for chat, until in list(self._floods.items()):
            if until <= now:
                del self._floods[chat]
        until = self._floods.get(chat_id)
        return None if until is None else math.ceil(until - now)

    async def _answered(self, job: Job) -> None:
        # Recorded as soon as the send returns: the narrowest window in which a crash could
        # make another worker answer this request again (see db/queue.py).
        await self._replies.record(job.request.id)
        age = datetime.now(UTC) - job.request.created_at
        metrics.REQUEST_SECONDS.observe(age.total_seconds())

    async def _fail(self, job: Job, error: str, apology: Reply) -> None:
        log.warning("%s: request %d failed: %s", self.name, job.request.id, error)
        try:
            await send_reply(
                self.bot,
                job.request.chat_id,
                job.request.message_id,
                apology,
                thread_id=job.request.thread_id,
            )
            replied = True
        except (Undeliverable, SendFailed) as exc:
            error += f"; the apology was not delivered: {exc}"
            replied = False
        await self._mark_failed(job.request.id, error, replied=replied)

    async def _mark_failed(self, request_id: int, error: str, *, replied: bool) -> None:
        await self._db(lambda s: queue.mark_failed(s, request_id, error, replied=replied))

    async def _retry(
        self, job: Job, error: str, *, delay_s: float | None = None, counted: bool = True
    ) -> None:
        """Back to the queue, not to be claimed for `delay_s` (by default longer after each
        attempt); `counted=False` gives the attempt back."""
        delay = RETRY_DELAY_S * job.request.attempts if delay_s is None else delay_s
        log.warning(
            "%s: request %d back to the queue for %.0f s: %s",
            self.name,
            job.request.id,
            delay,
            error,
        )
        await self._db(
            lambda s: queue.retry_later(
                s,
                worker=self.name,
                request_id=job.request.id,
                error=error,
                delay_s=delay,
                count_attempt=counted,
            )
        )
