"""Every text of the platform, in one gettext catalogue (`emobot/locales/<lang>/LC_MESSAGES/
emobot.po`), read through aiogram's i18n; and the one rule that picks a person's language.

Messages are looked up by key (`cmd.start`, `worker.no_face`, `label.happy`): the .po files
hold the Russian and the English text of each, with `{name}` placeholders (python-brace-format).
Translators edit the .po files; `make l10n` extracts the keys the code uses (emobot.pot) and
compiles the .mo files the processes read. tests/test_i18n.py fails on a key missing in
either language.
"""

from pathlib import Path

from aiogram.utils.i18n import I18n

LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"
LOCALES = Path(__file__).parent / "locales"
DOMAIN = "emobot"

catalogue = I18n(path=LOCALES, default_locale=DEFAULT_LANGUAGE, domain=DOMAIN)


def pick_language(chosen: str | None, telegram: str | None) -> str:
    """The person's choice (/language), else their Telegram client's language when the
    platform speaks it, else Russian."""
    if chosen in LANGUAGES:
        return chosen
    client = (telegram or "")[:2].lower()
    return client if client in LANGUAGES else DEFAULT_LANGUAGE


def t(lang: str, key: str, **values: object) -> str:
    """The text `key` in `lang` (Russian when the language is not supported)."""
    text = catalogue.gettext(key, locale=lang if lang in LANGUAGES else DEFAULT_LANGUAGE)
    return text.format(**values) if values else text


def label_name(lang: str, label: str) -> str:
    """A class's display name (`happy` → `счастливый`)."""
    return t(lang, f"label.{label}")
