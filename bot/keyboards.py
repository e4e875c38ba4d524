"""Inline keyboards and their callback data."""

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from emobot import feedback
from emobot.i18n import LANGUAGES, label_name, t
from emobot.labels import CLASSES


class ConsentCb(CallbackData, prefix="consent"):
    agree: bool


class LabelCb(CallbackData, prefix="label"):
    label: str


class BatchCb(CallbackData, prefix="batch"):
    action: str  # done | save | discard


class LanguageCb(CallbackData, prefix="lang"):
    code: str


class MineCb(CallbackData, prefix="mine"):
    action: str  # page | delete | delete_all | delete_all_yes | delete_all_no
    page: int = 0
    sample_id: int = 0


class PrivacyCb(CallbackData, prefix="privacy"):
    # withdraw | erase | keep (after withdrawing) | forget | forget_yes | forget_no
    action: str


class FeedbackCb(CallbackData, prefix=feedback.PREFIX):
    """The buttons under an answer (built by the worker: emobot.feedback packs the same
    strings) and those that follow them."""

    request: int
    action: str  # ok | fix | set | done | yes | no
    face: int = 0  # 0-based
    label: str = ""


class PromoteCb(CallbackData, prefix="promote"):
    version: int
    active: int  # the version that was active when asked: a stale answer is not acted on
    confirm: bool


def consent(lang: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=t(lang, "consent.yes"), callback_data=ConsentCb(agree=True))
    builder.button(text=t(lang, "consent.no"), callback_data=ConsentCb(agree=False))
    return builder.as_markup()


def labels(lang: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for label in CLASSES:
        builder.button(text=label_name(lang, label), callback_data=LabelCb(label=label))
    builder.adjust(2)
    return builder.as_markup()


def done(lang: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=t(lang, "contribute.done"), callback_data=BatchCb(action="done"))
    return builder.as_markup()


def save_or_discard(lang: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=t(lang, "contribute.save"), callback_data=BatchCb(action="save"))
    builder.button(text=t(lang, "contribute.discard"), callback_data=BatchCb(action="discard"))
    return builder.as_markup()


def languages() -> InlineKeyboardMarkup:
    names = {"ru": "Русский", "en": "English"}
    builder = InlineKeyboardBuilder()
    for code in LANGUAGES:
        builder.button(text=names[code], callback_data=LanguageCb(code=code))
    return builder.as_markup()


def mine_page(lang: str, sample_ids: list[int], page: int, pages: int) -> InlineKeyboardMarkup:
    """A delete button per listed photo, paging arrows, and "delete all"."""
    rows = [
        [
            InlineKeyboardButton(
                text=f"🗑 #{sample_id}",
                callback_data=MineCb(action="delete", page=page, sample_id=sample_id).pack(),
            )
        ]
        for sample_id in sample_ids
    ]
    arrows = []
    if page > 0:
        arrows.append(
            InlineKeyboardButton(
                text="◀", callback_data=MineCb(action="page", page=page - 1).pack()
            )
        )
    if page + 1 < pages:
        arrows.append(
            InlineKeyboardButton(
                text="▶", callback_data=MineCb(action="page", page=page + 1).pack()
            )
        )
    if arrows:
        rows.append(arrows)
    rows.append(
        [
            InlineKeyboardButton(
                text=t(lang, "mine.delete_all"), callback_data=MineCb(action="delete_all").pack()
            )
        ]
    )
    return InlineKeyboardMarkup(inline_keyboard=rows)


def delete_all_confirm(lang: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=t(lang, "mine.yes"), callback_data=MineCb(action="delete_all_yes"))
    builder.button(text=t(lang, "mine.no"), callback_data=MineCb(action="delete_all_no"))
    return builder.as_markup()


def privacy(lang: str, consented: bool) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if consented:
        builder.button(text=t(lang, "privacy.withdraw"), callback_data=PrivacyCb(action="withdraw"))
    builder.button(text=t(lang, "privacy.forget"), callback_data=PrivacyCb(action="forget"))
    builder.adjust(1)
    return builder.as_markup()


def erase_contributions(lang: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=t(lang, "privacy.erase_yes"), callback_data=PrivacyCb(action="erase"))
    builder.button(text=t(lang, "privacy.erase_no"), callback_data=PrivacyCb(action="keep"))
    return builder.as_markup()


def forget_confirm(lang: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=t(lang, "forget.yes"), callback_data=PrivacyCb(action="forget_yes"))
    builder.button(text=t(lang, "forget.no"), callback_data=PrivacyCb(action="forget_no"))
    return builder.as_markup()


def promote_confirm(lang: str, version: int, active: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=t(lang, "admin.promote.yes", version=version),
        callback_data=PromoteCb(version=version, active=active, confirm=True),
    )
    builder.button(
        text=t(lang, "admin.promote.no", version=active),
        callback_data=PromoteCb(version=version, active=active, confirm=False),
    )
    builder.adjust(1)
    return builder.as_markup()


def corrections(
    lang: str, request_id: int, faces: int, chosen: dict[int, str]
) -> InlineKeyboardMarkup:
    """A row per face (numbered as on the picture; one face: the emotions by name), its
    chosen emotion ticked, and "Done"."""
    rows = []
    for face in range(faces):
        row = []
        for label in CLASSES:
            name = label_name(lang, label) if faces == 1 else feedback.EMOJI[label]
            text = f"{face + 1}. {name}" if faces > 1 and label == CLASSES[0] else name
            if chosen.get(face) == label:
                text = f"✓ {text}"
            data = FeedbackCb(request=request_id, action="set", face=face, label=label)
            row.append(InlineKeyboardButton(text=text, callback_data=data.pack()))
        rows.append(row)
    done = FeedbackCb(request=request_id, action="done").pack()
    rows.append([InlineKeyboardButton(text=t(lang, "feedback.done"), callback_data=done)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def verdict_given(lang: str, request_id: int) -> InlineKeyboardMarkup:
    """Under an answer once judged: only "correct it", for a change of mind."""
    builder = InlineKeyboardBuilder()
    builder.button(
        text=t(lang, "feedback.correct"), callback_data=FeedbackCb(request=request_id, action="fix")
    )
    return builder.as_markup()


def feedback_consent(lang: str, request_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=t(lang, "consent.yes"), callback_data=FeedbackCb(request=request_id, action="yes")
    )
    builder.button(
        text=t(lang, "consent.no"), callback_data=FeedbackCb(request=request_id, action="no")
    )
    return builder.as_markup()
