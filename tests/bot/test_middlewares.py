"""Middlewares on their own: what throttling keeps in memory, what the outage retry retries."""

import datetime

import pytest
from aiogram.types import Chat, Message, Update, User
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot.middlewares import OutageRetry, Throttling


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def text_update(update_id: int, user_id: int) -> tuple[Update, dict[str, object]]:
    sender = User(id=user_id, is_bot=False, first_name="U")
    message = Message(
        message_id=update_id,
        date=datetime.datetime.now(datetime.UTC),
        chat=Chat(id=user_id, type="private"),
        from_user=sender,
        text="hello",
    )
    return Update(update_id=update_id, message=message), {"event_from_user": sender}


async def test_users_idle_for_a_window_are_forgotten() -> None:
    clock = Clock()
    throttling = Throttling(limit=3, window=10.0, clock=clock)
    handled = []

    async def handler(event: object, data: object) -> None:
        handled.append(event)

    for user_id in range(1, 1001):
        await throttling(handler, *text_update(user_id, user_id))
    assert len(throttling._hits) == 1000
    clock.now = 10.5  # the window passed: one active user is all there is to remember
    await throttling(handler, *text_update(2000, 7))
    assert len(handled) == 1001
    assert list(throttling._hits) == [7] and not throttling._albums and not throttling._warned


async def test_the_outage_retry_retries_only_an_unreachable_database() -> None:
    """A pool timeout (the database too slow or gone) is tried again; a bug is not."""
    retry = OutageRetry(give_up_after=5, first_wait=0.01, longest_wait=0.02)
    attempts: list[int] = []

    async def flaky(event: object, data: dict[str, object]) -> str:
        attempts.append(data["delivery"].attempt)  # type: ignore[attr-defined]
        if len(attempts) < 3:
            raise PoolTimeout("QueuePool limit of size 1 overflow 0 reached")
        return "answered"

    update, data = text_update(1, 7)
    assert await retry(flaky, update, data) == "answered"
    assert attempts == [1, 2, 3]

    async def buggy(event: object, data: dict[str, object]) -> None:
        attempts.append(0)
        raise ValueError("a bug")

    attempts.clear()
    with pytest.raises(ValueError):
        await retry(buggy, *text_update(2, 7))
    assert attempts == [0]
