"""Drawing numbered face boxes and their labels on a photo, for replies with several faces."""

import importlib.util
import io
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MAX_SIDE = 1600  # Telegram shows photos at most about this large; bigger only costs bytes
COLOURS = ((46, 204, 113), (52, 152, 219), (231, 76, 60), (241, 196, 15), (155, 89, 182))


@cache
def _font_path() -> Path:
    # DejaVu Sans comes with matplotlib and has Cyrillic, which OpenCV's fonts lack. Found
    # without importing matplotlib, which would cost the worker about 40 MB for a file name.
    spec = importlib.util.find_spec("matplotlib")
    assert spec is not None and spec.submodule_search_locations, "matplotlib is a dependency"
    package = Path(spec.submodule_search_locations[0])
    return package / "mpl-data" / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"


Box = tuple[int, int, int, int] | list[int]  # x, y, w, h


def annotate(image: np.ndarray, boxes: list[Box], labels: list[str]) -> bytes:
    """JPEG bytes of the BGR `image` with box i labelled "i. label" (numbered from 1)."""
    if len(boxes) != len(labels):
        raise ValueError(f"{len(boxes)} boxes but {len(labels)} labels")
    picture = Image.fromarray(np.ascontiguousarray(image[:, :, ::-1]))
    scale = min(1.0, MAX_SIDE / max(picture.size))
    if scale < 1.0:
        picture = picture.resize(
            (round(picture.width * scale), round(picture.height * scale)), Image.Resampling.LANCZOS
        )
    draw = ImageDraw.Draw(picture)
    font_size = max(12, round(max(picture.size) / 40))
    font = ImageFont.truetype(str(_font_path()), font_size)
    line = max(2, round(max(picture.size) / 300))
    for i, (box, label) in enumerate(zip(boxes, labels, strict=True), start=1):
        colour = COLOURS[(i - 1) % len(COLOURS)]
        x, y, w, h = (round(v * scale) for v in box)
        draw.rectangle((x, y, x + w, y + h), outline=colour, width=line)
        text = f"{i}. {label}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left, bottom - top
        # Above the box if there is room, else inside its top edge.
        ty = y - th - 2 * line if y - th - 2 * line >= 0 else y + line
        tx = min(max(0, x), max(0, picture.width - tw - 2 * line))
        draw.rectangle((tx, ty, tx + tw + 2 * line, ty + th + 2 * line), fill=colour)
        draw.text((tx + line - left, ty + line - top), text, fill=(255, 255, 255), font=font)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=90)
    return out.getvalue()


def contact_sheet(images: list[bytes | None], numbers: list[str], cell: int = 200) -> bytes:
    """JPEG bytes of the images as thumbnails in a grid (three a row), each with its number
    under it, so that a person can tell which photo a number means; None (or bytes that are
    no image) leaves its cell grey."""
    if len(images) != len(numbers):
        raise ValueError(f"{len(images)} images but {len(numbers)} numbers")
    columns = max(1, min(3, len(images)))
    rows = max(1, -(-len(images) // columns))
    pad, label = 6, round(cell / 6)
    width, height = cell + 2 * pad, cell + label + 2 * pad
    sheet = Image.new("RGB", (columns * width, rows * height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.truetype(str(_font_path()), round(label * 0.8))
    for i, (data, number) in enumerate(zip(images, numbers, strict=True)):
        left, top = (i % columns) * width + pad, (i // columns) * height + pad
        draw.rectangle((left, top, left + cell - 1, top + cell - 1), fill=(220, 220, 220))
        try:
            with Image.open(io.BytesIO(data or b"")) as opened:
                thumb = opened.convert("RGB")
            thumb.thumbnail((cell, cell), Image.Resampling.LANCZOS)
            sheet.paste(thumb, (left + (cell - thumb.width) // 2, top + (cell - thumb.height) // 2))
        except (OSError, ValueError, Image.DecompressionBombError):
            pass  # a grey cell: the number still says which photo it is
        box = draw.textbbox((0, 0), number, font=font)
        x = left + (cell - (box[2] - box[0])) // 2 - box[0]
        draw.text((x, top + cell + 2 - box[1]), number, fill=(20, 20, 20), font=font)
    out = io.BytesIO()
    sheet.save(out, format="JPEG", quality=85)
    return out.getvalue()
