"""Clips built at test time from the public-domain faces of tests/data/faces (nothing derived
from shared data): the smiling astronaut (Eileen Collins, NASA) and Grace Hopper (US Navy,
from matplotlib's sample data), whom the shipped model calls happy and neutral.

    make_clip(["happy", "neutral"] * 3)            # 6 s: the face changes every second
    make_clip(..., kind="note")                    # a round video note: 480×480 H.264 MP4
    make_clip(..., kind="gif")                     # an animated GIF
"""

import io
from collections.abc import Sequence
from fractions import Fraction
from functools import cache
from pathlib import Path

import cv2
import matplotlib
import numpy as np

FACES = Path(__file__).parent / "data" / "faces"
# The face boxes in the sources, as the detector finds them (tests/data/faces/make_photos.py).
ASTRONAUT_FACE = (173, 76, 100, 100)
HOPPER_FACE = (166, 143, 200, 200)


@cache
def _sources() -> dict[str, tuple[np.ndarray, tuple[int, int, int, int]]]:
    astronaut = cv2.imread(str(FACES / "astronaut.jpg"))
    hopper = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    return {"happy": (astronaut, ASTRONAUT_FACE), "neutral": (hopper, HOPPER_FACE)}


def frame(
    who: str | None, size: tuple[int, int] = (480, 480), face_share: float = 0.4
) -> np.ndarray:
    """A BGR frame: the face of `who` ("happy", "neutral"; None: no face, the coffee cup of
    coffee.jpg) centred on grey, its box `face_share` of the short side across."""
    width, height = size
    if who is None:
        coffee = cv2.imread(str(FACES / "coffee.jpg"))
        return cv2.resize(coffee, size, interpolation=cv2.INTER_AREA)
    image, (x, y, w, h) = _sources()[who]
    face_px = face_share * min(width, height)
    scale = face_px / w
    matrix = np.array(
        [[scale, 0, width / 2 - (x + w / 2) * scale], [0, scale, height / 2 - (y + h / 2) * scale]]
    )
    head = cv2.warpAffine(image, matrix, size, borderMode=cv2.BORDER_REPLICATE)
    mask = np.zeros((height, width), np.float32)
    axes = (int(face_px * 0.8), int(face_px * 0.95))
    cv2.ellipse(mask, (width // 2, height // 2), axes, 0, 0, 360, 1, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), face_px * 0.05)[..., None]
    grey = np.full_like(head, 128)
    return (head * mask + grey * (1 - mask)).astype(np.uint8)


def make_clip(
    seconds: Sequence[str | None],
    *,
    kind: str = "mp4",
    fps: int = 10,
    size: tuple[int, int] = (480, 480),
    rotation: int = 0,
    frame_times: Sequence[float] | None = None,
) -> bytes:
    """A clip showing `seconds[i]` during second i. `kind`: "mp4" or "note" (H.264 MP4),
    "gif", "webm" (VP9). `rotation`: the display matrix's (counterclockwise degrees, as phones
    write it); the frames are stored turned the other way, so the clip shows them upright.
    `frame_times`: a variable frame rate, each frame's time in seconds."""
    import av

    times = (
        list(frame_times)
        if frame_times is not None
        else [i / fps for i in range(len(seconds) * fps)]
    )
    stored = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
    images: dict[str | None, np.ndarray] = {}
    for who in set(seconds):
        image = frame(who, size)
        images[who] = cv2.rotate(image, stored[rotation]) if rotation else image
    out = io.BytesIO()
    container_format, codec = {
        "mp4": ("mp4", "libx264"),
        "note": ("mp4", "libx264"),
        "gif": ("gif", "gif"),
        "webm": ("webm", "libvpx-vp9"),
    }[kind]
    with av.open(out, "w", format=container_format) as container:
        # A variable frame rate: frame times in milliseconds, the encoder's clock too.
        stream = container.add_stream(codec, rate=fps if frame_times is None else 1000)
        first = images[seconds[0]]
        stream.height, stream.width = first.shape[:2]
        stream.pix_fmt = "rgb8" if kind == "gif" else "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        # GIF counts delays in hundredths of a second.
        stream.time_base = Fraction(1, 100 if kind == "gif" else 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for t in times:
            who = seconds[min(int(t), len(seconds) - 1)]
            video_frame = av.VideoFrame.from_ndarray(images[who], format="bgr24")
            video_frame.pts = round(t / float(stream.time_base))
            video_frame.time_base = stream.time_base
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def audio_only(seconds: float = 1.0) -> bytes:
    """An MP4 holding one AAC audio stream and no video."""
    import av

    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=44100)
        samples = int(seconds * 44100)
        for start in range(0, samples, 1024):
            tone = np.sin(np.arange(start, start + 1024) / 20).astype(np.float32)[None]
            audio = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            audio.sample_rate = 44100
            audio.pts = start
            for packet in stream.encode(audio):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()
