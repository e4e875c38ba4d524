"""Every text of the platform, in one gettext catalogue (`emobot/locales/<lang>/LC_MESSAGES/
emobot.po`), read with the standard library's gettext; and the one rule that picks a person's
language.

Messages are looked up by key (`cmd.start`, `worker.no_face`, `label.happy`): the .po files
hold the Russian and the English text of each, with `{name}` placeholders (python-brace-format).
Translators edit the .po files; `make l10n` extracts the keys the code uses (emobot.pot) and
compiles the .mo files the processes read. tests/test_i18n.py fails on a key missing in
either language.
"""

import gettext
from pathlib import Path

LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"
LOCALES = Path(__file__).parent / "locales"
DOMAIN = "emobot"

# Not aiogram's I18n, which brings the whole of aiogram (about 150 MB) into the worker and the
# trainer. A missing .mo file fails at import: run `make l10n`.
catalogue = {lang: gettext.translation(DOMAIN, LOCALES, languages=[lang]) for lang in LANGUAGES}


def pick_language(chosen: str | None, telegram: str | None) -> str:
    """The person's choice (/language), else their Telegram client's language when the
    platform speaks it, else Russian."""
    if chosen in LANGUAGES:
        return chosen
    client = (telegram or "")[:2].lower()
    return client if client in LANGUAGES else DEFAULT_LANGUAGE


def t(lang: str, key: str, **values: object) -> str:
    """The text `key` in `lang` (Russian when the language is not supported)."""
    text = catalogue[lang if lang in LANGUAGES else DEFAULT_LANGUAGE].gettext(key)
    return text.format(**values) if values else text


def label_name(lang: str, label: str) -> str:
    """A class's display name (`happy` → `счастливый`)."""
    return t(lang, f"label.{label}")
