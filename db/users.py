"""Telegram users: upserted on every update; their language choice and consent."""

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import User
from emobot.i18n import DEFAULT_LANGUAGE, pick_language


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
        # Cut to the columns' widths: Telegram's limits are lower (32 and 64), a forged
        # update's are not, and a name is no reason to refuse someone.
        "username": username[:64] if username else None,
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


async def give_consent(session: AsyncSession, user_id: int, version: int) -> None:
    """Record that the user agreed to version `version` of the consent text, and when."""
    await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(consent_at=func.now(), consent_version=version)
    )


async def mark_feedback_asked(session: AsyncSession, user_id: int, version: int) -> None:
    """Record that the user was asked, under consent text `version`, to keep judged faces."""
    await session.execute(
        update(User).where(User.id == user_id).values(feedback_asked_version=version)
    )


async def withdraw_consent(session: AsyncSession, user_id: int) -> bool:
    """Forget the user's consent; returns whether there was one."""
    withdrawn = await session.scalar(
        update(User)
        .where(User.id == user_id, User.consent_at.is_not(None))
        .values(consent_at=None, consent_version=None)
        .returning(User.id)
    )
    return withdrawn is not None


def has_consent(user: User, version: int) -> bool:
    """Whether the user agreed to this version of the consent text."""
    return user.consent_at is not None and user.consent_version == version


def user_language(user: User | None) -> str:
    """The language to speak to the user in (emobot.i18n's rule)."""
    if user is None:
        return DEFAULT_LANGUAGE
    return pick_language(user.language, user.telegram_language)
