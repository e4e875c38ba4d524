"""Telegram's reading of `parse_mode=HTML`, so that the fake Bot API refuses what Telegram
refuses: "Bad Request: can't parse entities: …".

A port of the checks of TDLib's HTML parser (td/telegram/MessageEntity.cpp, which the Bot API
runs): a `<` always opens a tag, only Telegram's tags are allowed, every tag must be closed in
order, attributes must be `name=value`. `&` followed by an unknown entity stays text there, as
it does in Telegram. Offsets in the errors are UTF-8 byte offsets, as Telegram gives them.
"""

# https://core.telegram.org/bots/api#html-style
SUPPORTED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_SPACES = b" \t\r\n\f\v"


class EntityError(ValueError):
    """Why Telegram cannot parse the text; the message is Telegram's."""


def check_html(text: str) -> None:
    """Raise EntityError where Telegram would answer "can't parse entities"."""
    data = text.encode("utf-8") + b"\0"  # TDLib reads a NUL-terminated string
    end = len(data) - 1
    open_tags: list[str] = []
    i = 0
    while i < end:
        if data[i] != ord("<"):
            i += 1
            continue
        begin = i
        i += 1
        if data[i] != ord("/"):
            while data[i] not in _SPACES and data[i] != ord(">") and i < end:
                i += 1
            if i >= end:
                raise EntityError(f"Unclosed start tag at byte offset {begin}")
            tag = data[begin + 1 : i].decode("utf-8", "replace").lower()
            if tag not in SUPPORTED_TAGS:
                raise EntityError(f'Unsupported start tag "{tag}" at byte offset {begin}')
            i = _skip_attributes(data, i, end, tag, begin)
            open_tags.append(tag)
            i += 1  # the ">"
            continue
        if not open_tags:
            raise EntityError(f"Unexpected end tag at byte offset {begin}")
        while data[i] not in _SPACES and data[i] != ord(">") and i < end:
            i += 1
        end_tag = data[begin + 2 : i].decode("utf-8", "replace")
        while data[i] in _SPACES and i < end:
            i += 1
        if data[i] != ord(">"):
            raise EntityError(f"Unclosed end tag at byte offset {begin}")
        tag = open_tags.pop()
        if end_tag and end_tag != tag:
            raise EntityError(
                f'Unmatched end tag at byte offset {begin}, expected "</{tag}>", '
                f'found "</{end_tag}>"'
            )
        i += 1
    if open_tags:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{open_tags[-1]}"')


def _skip_attributes(data: bytes, i: int, end: int, tag: str, begin: int) -> int:
    """Past the attributes of a start tag; returns the position of its `>`."""
    while data[i] != ord(">"):
        while data[i] in _SPACES and i < end:
            i += 1
        if data[i] == ord(">"):
            break
        name_start = i
        while data[i] not in _SPACES and data[i] != ord("=") and i < end:
            i += 1
        if i == name_start:
            raise EntityError(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
        while data[i] in _SPACES and i < end:
            i += 1
        if data[i] != ord("="):
            raise EntityError(
                "Expected equal sign in declaration of an attribute of the tag "
                f'"{tag}" at byte offset {begin}'
            )
        i += 1
        while data[i] in _SPACES and i < end:
            i += 1
        if i >= end:
            raise EntityError(f'Unclosed start tag "{tag}" at byte offset {begin}')
        if data[i] in b"'\"":
            quote = data[i]
            i += 1
            while data[i] != quote and i < end:
                i += 1
            if data[i] == quote:
                i += 1
        else:
            while data[i] not in _SPACES and data[i] != ord(">") and i < end:
                i += 1
        if i >= end:
            raise EntityError(f"Unclosed start tag at byte offset {begin}")
    return i
