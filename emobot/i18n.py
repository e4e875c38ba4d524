"""The languages the platform speaks, and the one rule that picks a person's."""

LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"


def pick_language(chosen: str | None, telegram: str | None) -> str:
    """The person's choice (/language), else their Telegram client's language when the
    platform speaks it, else Russian."""
    if chosen in LANGUAGES:
        return chosen
    client = (telegram or "")[:2].lower()
    return client if client in LANGUAGES else DEFAULT_LANGUAGE
