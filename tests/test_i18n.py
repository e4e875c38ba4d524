"""The one text catalogue (emobot/locales): complete in both languages, compiled, and holding
every key the code asks for by name."""

import re
import string
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from emobot.i18n import DOMAIN, LANGUAGES, LOCALES, t

ROOT = Path(__file__).parents[1]
# Where texts are asked for by key: t(lang, "key"), and a refusal's Rejected("key").
KEYWORDS = {"t": (2,), "Rejected": (1,)}


def catalogue(lang: str, kind: str = "po") -> Catalog:
    path = LOCALES / lang / "LC_MESSAGES" / f"{DOMAIN}.{kind}"
    with path.open("rb") as f:
        return read_po(f) if kind == "po" else read_mo(f)


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_languages_have_every_key_translated_with_the_same_placeholders() -> None:
    ru, en = (catalogue(lang) for lang in LANGUAGES)
    keys = {m.id for m in ru if m.id}
    assert keys == {m.id for m in en if m.id}, "a key is missing in one language"
    for key in keys:
        assert ru[key].string and en[key].string, f"{key} has no text"
        assert placeholders(ru[key].string) == placeholders(en[key].string), key


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_compiled_catalogue_is_the_po_file(lang: str) -> None:
    """The .mo the processes read is compiled from the .po as it is (`make l10n`)."""
    po, mo = catalogue(lang), catalogue(lang, "mo")
    assert {m.id: m.string for m in po if m.id} == {m.id: m.string for m in mo if m.id}


def test_every_key_the_code_names_is_in_the_catalogue() -> None:
    keys = {m.id for m in catalogue("en") if m.id}
    named = {
        message
        for folder in ("bot", "worker", "trainer", "emobot", "runtime", "cli", "db", "ml")
        for _, _, message, _, _ in extract_from_dir(
            ROOT / folder, [("**.py", "python")], keywords=KEYWORDS
        )
        if isinstance(message, str) and re.fullmatch(r"[a-z_.0-9]+", message)
    }
    assert named, "nothing extracted"
    assert named <= keys, sorted(named - keys)


def test_a_text_in_each_language() -> None:
    assert t("en", "label.surprise") == "surprised" and t("ru", "label.happy") == "счастливый"
    assert t("de", "worker.faces", count=3) == t("ru", "worker.faces", count=3)
