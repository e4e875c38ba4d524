"""The PostgreSQL queue: claiming with SKIP LOCKED, leases, attempts, results, replies."""

import asyncio

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queue
from db.models import PredictionRequest, User
from db.samples import ensure_users


async def _enqueue(sessions: async_sessionmaker[AsyncSession], n: int, user_id: int | None = None):
    async with sessions.begin() as session:
        return [
            (
                await queue.enqueue(
                    session, chat_id=100 + i, user_id=user_id, message_id=i, blob_key=f"images/{i}"
                )
            ).id
            for i in range(n)
        ]


async def _row(sessions: async_sessionmaker[AsyncSession], request_id: int) -> PredictionRequest:
    async with sessions() as session:
        row = await session.get(PredictionRequest, request_id)
        assert row is not None
        return row


async def test_claims_oldest_first_and_skips_rows_held_by_another_transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ids = await _enqueue(sessions, 5)
    async with sessions.begin() as first, sessions.begin() as second:
        a = await queue.claim(first, worker="a", limit=3, lease_s=60)
        # `first` has not committed: its rows are locked, `second` takes the rest at once.
        b = await queue.claim(second, worker="b", limit=3, lease_s=60)
    assert [c.id for c in a] == ids[:3]
    assert [c.id for c in b] == ids[3:]
    assert all(c.attempts == 1 for c in a + b)
    async with sessions() as session:
        assert await queue.depth(session) == 5
        holders = dict(
            (await session.execute(select(PredictionRequest.id, PredictionRequest.locked_by))).all()
        )
    assert holders == {i: "a" if i in ids[:3] else "b" for i in ids}


async def test_a_held_lease_is_not_claimed_but_an_expired_one_is(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    [request_id] = await _enqueue(sessions, 1)
    async with sessions.begin() as session:
        assert len(await queue.claim(session, worker="dead", limit=10, lease_s=0.2)) == 1
    async with sessions.begin() as session:
        assert await queue.claim(session, worker="other", limit=10, lease_s=60) == []
    await asyncio.sleep(0.3)
    async with sessions.begin() as session:
        [again] = await queue.claim(session, worker="other", limit=10, lease_s=60)
    assert again.id == request_id and again.attempts == 2
    # The worker whose lease ran out can no longer write a result for it.
    async with sessions.begin() as session:
        held = await queue.save_results(
            session, worker="dead", lease_s=60, results={request_id: ({"faces": []}, 1, {})}
        )
        assert held == set()
        assert await queue.still_held(session, worker="dead", ids=[request_id]) == set()
        assert await queue.still_held(session, worker="other", ids=[request_id]) == {request_id}


async def test_results_survive_a_crash_and_a_reply_is_recorded_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    [request_id] = await _enqueue(sessions, 1)
    result = {"faces": [{"box": [1, 2, 3, 4], "probs": [0.1, 0.7, 0.1, 0.1]}]}
    async with sessions.begin() as session:
        await queue.claim(session, worker="a", limit=1, lease_s=0.2)
        held = await queue.save_results(
            session, worker="a", lease_s=0.2, results={request_id: (result, 3, {"model_ms": 1})}
        )
        assert held == {request_id}
    await asyncio.sleep(0.3)  # worker "a" died before replying
    async with sessions.begin() as session:
        [again] = await queue.claim(session, worker="b", limit=1, lease_s=60)
    assert again.result == result and again.model_version == 3
    async with sessions.begin() as session:
        assert await queue.mark_replied(session, [request_id]) == {request_id}
        assert await queue.mark_replied(session, [request_id]) == set()
        assert await queue.mark_failed(session, request_id, "late", replied=False) is False
    row = await _row(sessions, request_id)
    assert (row.status, row.error, row.locked_until) == ("done", None, None)
    assert row.replied_at is not None and row.finished_at is not None
    async with sessions.begin() as session:
        assert await queue.claim(session, worker="c", limit=1, lease_s=60) == []
        assert await queue.depth(session) == 0


async def test_release_returns_work_uncounted_and_retry_later_waits(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first, second = await _enqueue(sessions, 2)
    async with sessions.begin() as session:
        await queue.claim(session, worker="a", limit=2, lease_s=60)
        assert await queue.release(session, worker="someone-else", ids=[first, second]) == 0
        assert await queue.release(session, worker="a", ids=[first]) == 1
        await queue.retry_later(session, worker="a", request_id=second, error="boom", delay_s=0.3)
    row = await _row(sessions, first)
    assert (row.status, row.attempts, row.locked_by) == ("queued", 0, None)
    async with sessions.begin() as session:
        assert [c.id for c in await queue.claim(session, worker="b", limit=5, lease_s=60)] == [
            first
        ]
    await asyncio.sleep(0.4)
    async with sessions.begin() as session:
        [retried] = await queue.claim(session, worker="b", limit=5, lease_s=60)
    assert retried.id == second and retried.attempts == 2
    assert (await _row(sessions, second)).error == "boom"


async def test_everything_a_worker_holds_can_be_given_back_and_a_deferral_uncounted(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """After a claim whose commit was lost (a database outage), a worker gives back all it
    holds; a request deferred for its chat's flood wait without a try gets its attempt back."""
    first, second, third = await _enqueue(sessions, 3)
    async with sessions.begin() as session:
        await queue.claim(session, worker="a", limit=2, lease_s=60)
        await queue.claim(session, worker="b", limit=1, lease_s=60)
        assert await queue.release(session, worker="a", ids=None) == 2
    assert {(await _row(sessions, i)).status for i in (first, second)} == {"queued"}
    assert (await _row(sessions, third)).locked_by == "b"
    async with sessions.begin() as session:
        await queue.retry_later(
            session,
            worker="b",
            request_id=third,
            error="flood control",
            delay_s=60,
            count_attempt=False,
        )
    row = await _row(sessions, third)
    assert (row.status, row.attempts, row.error) == ("queued", 0, "flood control")
    async with sessions.begin() as session:
        claimed = await queue.claim(session, worker="c", limit=5, lease_s=60)
    assert sorted(c.id for c in claimed) == [first, second]  # not before its wait is over


async def test_failed_request_keeps_its_error_and_leaves_the_queue(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    [request_id] = await _enqueue(sessions, 1)
    async with sessions.begin() as session:
        await queue.claim(session, worker="a", limit=1, lease_s=60)
        assert await queue.mark_failed(session, request_id, "blob missing", replied=True)
    row = await _row(sessions, request_id)
    assert (row.status, row.error) == ("failed", "blob missing")
    assert row.replied_at is not None
    async with sessions() as session:
        assert await queue.depth(session) == 0


async def test_claim_brings_the_language_decided_when_the_request_was_made(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        session.add_all([User(id=7, language="ru"), User(id=8, language="en")])
        await session.flush()
        # Both users changed their language after asking: the row decides.
        await queue.enqueue(
            session, chat_id=7, user_id=7, message_id=1, blob_key="images/7", language="en"
        )
        await queue.enqueue(session, chat_id=8, user_id=8, message_id=1, blob_key="images/8")
    async with sessions.begin() as session:
        first, second = await queue.claim(session, worker="a", limit=2, lease_s=60)
    assert (first.chat_id, first.language) == (7, "en")
    assert (second.chat_id, second.language) == (8, "ru")


async def test_claims_take_every_users_oldest_before_anyones_next(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        await ensure_users(session, [1, 2])
    flood = await _enqueue(sessions, 6, user_id=1)
    [other] = await _enqueue(sessions, 1, user_id=2)  # sent after the whole flood
    async with sessions.begin() as session:
        batch = await queue.claim(session, worker="w", limit=3, lease_s=60)
        assert await queue.waiting_for(session, 1) == 6
    assert sorted(c.id for c in batch) == sorted([flood[0], other, flood[1]])
