"""A burst of photos through the real bot and a worker: every photo is answered or named in a
refusal, and another user's photo is not stuck behind the burst."""

import re

from sqlalchemy import func, select

from db.engine import Storage
from db.models import PredictionRequest
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer, BotCall
from runtime.botclient import BotClient
from tests.bot.conftest import BotHarness
from tests.worker.conftest import photo, running
from worker.service import Worker

BURST = 50
CAP = 20


def answer_to(call: BotCall) -> int | None:
    """The photo a worker's answer replies to (probabilities in a text, or a picture)."""
    is_answer = (call.method == "sendMessage" and "%" in (call.text or "")) or (
        call.method == "sendPhoto"
    )
    return call.params.get("reply_parameters", {}).get("message_id") if is_answer else None


def answers(emulator: BotAPIEmulator, chat_id: int) -> list[BotCall]:
    return [c for c in emulator.calls_in(chat_id, after=0) if answer_to(c) is not None]


async def test_a_burst_of_50_photos_loses_none(
    storage: Storage,
    worker_settings: Settings,
    botapi: tuple[BotAPIEmulator, BotAPIServer],
    bot: BotClient,
) -> None:
    emulator, server = botapi
    settings = worker_settings.model_copy(update={"max_queued_per_user": CAP, "batch_size": 8})
    harness = BotHarness(emulator, server, storage, settings)
    await harness.start()
    worker = Worker(settings, storage, bot, name="burst")
    ann = emulator.user(70, "Ann", language_code="en")
    bob = emulator.user(71, "Bob", language_code="en")
    try:
        # 50 photos within a fraction of a second, as fast as the emulator queues them; the bot
        # has handled them all when the refusal of those over the cap is out.
        sent = [ann.send_photo(photo("astronaut.jpg"))["message_id"] for _ in range(BURST)]
        await emulator.wait_for(ann.id, lambda c: "not queued" in (c.text or ""), 120, after=0)
        bob_photo = bob.send_photo(photo("astronaut.jpg"))["message_id"]
        await emulator.wait_for(bob.id, lambda c: "working on it" in (c.text or ""), 30)
        # The worker starts with Ann's 20 queued before Bob's one: Bob is served in turn.
        async with running(worker):
            bob_answer = await emulator.wait_for(bob.id, lambda c: answer_to(c) == bob_photo, 120)
            await emulator.wait_for(
                ann.id, lambda c: len(answers(emulator, ann.id)) >= CAP, 120, after=0
            )
    finally:
        await harness.stop()

    calls = emulator.calls_in(ann.id, after=0)
    answered = [answer_to(c) for c in calls if answer_to(c) is not None]
    notices = [c for c in calls if "not queued" in (c.text or "")]
    named: list[int] = []
    for notice in notices:
        count = int(re.search(r"(\d+), this one", notice.text or "").group(1))
        first = sent.index(notice.params["reply_parameters"]["message_id"])
        named += sent[first : first + count]
    lost = set(sent) - set(answered) - set(named)
    print(
        f"burst of {BURST}: {len(answered)} answered, {len(named)} refused by name "
        f"in {len(notices)} notice(s), {len(lost)} lost"
    )
    assert sorted(answered + named) == sorted(sent)  # each photo once: answered or named
    assert len(answered) == CAP and len(named) == BURST - CAP  # the cap, and said so
    assert bob_answer.seq < max(c.seq for c in calls if answer_to(c) is not None)
    assert not [c for c in calls if "Too many messages" in (c.text or "")]
    async with storage.sessions() as session:
        statuses = dict(
            (
                await session.execute(
                    select(PredictionRequest.status, func.count()).group_by(
                        PredictionRequest.status
                    )
                )
            ).all()
        )
    assert statuses == {"done": len(answered) + 1}  # Ann's queued ones and Bob's
