"""/privacy and /forget: what is kept about a person, withdrawing consent, erasing them."""

from sqlalchemy.ext.asyncio import AsyncSession

from db.contributions import counts_by_label
from db.models import User
from db.users import withdraw_consent
from emobot.i18n import t

# The version of the consent text (`consent.ask`): raise it when what people agree to changes,
# and everyone is asked again on their next /contribute. Version 1 did not mention /privacy;
# version 2 not the faces of answers a person confirms or corrects (feedback).
CONSENT_VERSION = 3


def describe(lang: str, user: User, retention_hours: float) -> str:
    """The /privacy text, with this deployment's retention and the user's consent."""
    retention = (
        t(lang, "privacy.retention.hours", hours=f"{retention_hours:g}")
        if retention_hours
        else t(lang, "privacy.retention.now")
    )
    consent = (
        t(
            lang,
            "privacy.consent.given",
            date=user.consent_at.strftime("%Y-%m-%d"),
            version=user.consent_version,
        )
        if user.consent_at
        else t(lang, "privacy.consent.none")
    )
    return t(lang, "privacy.text", retention=retention, consent=consent)


async def withdraw(session: AsyncSession, user_id: int) -> int | None:
    """Withdraw the user's consent; returns how many of their photos are in the dataset, or
    None when there was no consent to withdraw."""
    if not await withdraw_consent(session, user_id):
        return None
    return sum((await counts_by_label(session, user_id)).values())
