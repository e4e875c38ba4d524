"""Telegram users: upserted on every update; their language choice and consent."""

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import User


async def upsert_user(
    session: AsyncSession,
    user_id: int,
    *,
    username: str | None,
    first_name: str | None,
    telegram_language: str | None,
) -> User:
    """Insert the user or refresh what Telegram says about them; returns the row."""
    values = {
        "username": username,
        "first_name": first_name[:128] if first_name else None,
        "telegram_language": telegram_language,
    }
    statement = (
        insert(User)
        .values(id=user_id, **values)
        .on_conflict_do_update(index_elements=[User.id], set_=values)
        .returning(User)
    )
    # populate_existing: the identity map may hold this user from earlier in the session.
    user = await session.scalar(statement, execution_options={"populate_existing": True})
    assert user is not None  # INSERT … RETURNING always returns the row
    return user


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.scalar(select(User).where(User.id == user_id))


async def set_language(session: AsyncSession, user_id: int, language: str | None) -> None:
    await session.execute(update(User).where(User.id == user_id).values(language=language))


async def give_consent(session: AsyncSession, user_id: int) -> None:
    """Record that the user agreed to their photos being used for training (first time only)."""
    await session.execute(
        update(User)
        .where(User.id == user_id, User.consent_at.is_(None))
        .values(consent_at=func.now())
    )


def user_language(user: User | None, supported: tuple[str, ...] = ("ru", "en")) -> str:
    """The chosen language, else the Telegram client's when supported, else Russian."""
    if user is not None and user.language in supported:
        return user.language
    telegram = (user.telegram_language or "")[:2].lower() if user else ""
    return telegram if telegram in supported else supported[0]
