"""Reading clips (video notes, GIFs, videos) from memory, and their faces frame after frame.

Decoding is PyAV's (its wheels bundle FFmpeg: H.264, HEVC, VP9, AV1, GIF), imported only when
a clip is opened, so a process that never sees one does not pay for it (about 28 MB).

- The container is recognised by its first bytes and its demuxer named: FFmpeg never probes
  the bytes as whatever they resemble (a playlist format would open other files).
- Frames are sampled by their timestamps (`fps` a second; variable frame rates and GIF delays
  included), at most `max_frames`, from the first `max_seconds`; the frames between are decoded
  (a video's frames depend on each other) but never converted. Non-reference frames are not
  even decoded when the clip runs at more than twice the sampling rate.
- A sampled frame is converted at a reduced size (long side ≤ MAX_SIDE) and turned upright by
  its display matrix (a phone's portrait video is stored sideways).
- `deadline` (time.monotonic()) bounds the whole reading: what was read by then is analysed.
"""

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ml.faces import Face, aligned_faces, detect, follow
from ml.timeline import box_iou

if TYPE_CHECKING:
    import av.container

    from ml.inference import Predictor

# Frames larger than this on their long side are shrunk while converted: more than the
# detector's fine pass looks at (448), and a face must be 5–7 % of the long side to be found.
MAX_SIDE = 640
# Larger frames are refused before any is decoded: one 8K frame takes about 100 MB to decode.
MAX_PIXELS = 4096 * 2304
# Between full searches, each face is only looked for again around its last box.
FULL_SEARCH_SECONDS = 2.0
# Two boxes overlapping this much in one frame are one face followed twice.
SAME_FACE_IOU = 0.5
_DEMUXERS = {"mov": "mov", "matroska": "matroska", "gif": "gif", "avi": "avi"}


class ClipError(ValueError):
    """A clip that cannot be analysed; `reason` says why (a key of the worker's texts):
    not_video, audio_only, too_many_pixels, unreadable, no_frames."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def container_of(data: bytes) -> str | None:
    """The demuxer for these bytes, from their first bytes; None when they are no clip."""
    if data[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "mov"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "avi"
    return None


@dataclass
class ClipFrame:
    t: float  # seconds from the first frame
    image: np.ndarray  # BGR, upright, long side ≤ MAX_SIDE


@dataclass
class Clip:
    """An opened clip; `frames()` yields its sampled frames, after which `analysed_s`,
    `stopped` and `decoded` tell how far it got."""

    container: "av.container.InputContainer"
    stream: Any
    declared_s: float | None  # what the container says, if anything
    fps: float
    max_frames: int
    max_seconds: float
    deadline: float | None
    analysed_s: float = 0.0
    size: tuple[int, int] = (0, 0)  # width and height of the frames yielded (upright, shrunk)
    decoded: int = 0  # frames decoded, sampled or not
    sampled: int = 0
    # Why reading stopped before the end: "long" (past max_seconds), "frames" (max_frames),
    # "time" (the deadline), "broken" (a decoding error after some frames); None: the end.
    stopped: str | None = None
    error: str | None = None  # the decoding error that stopped it ("broken")

    def frames(self) -> Iterator[ClipFrame]:
        import av

        step = 1.0 / self.fps
        # Frames without a timestamp follow the previous one at the stream's own rate.
        frame_step = 1.0 / float(self.stream.average_rate or self.stream.guessed_rate or 25)
        start: float | None = None
        next_t = 0.0
        last = -frame_step
        try:
            for frame in self.container.decode(self.stream):
                self.decoded += 1
                raw = frame.time
                if start is None:
                    start = raw or 0.0
                t = (raw - start) if raw is not None else last + frame_step
                t = max(t, last)  # timestamps going back (a broken stream): keep the order
                last = t
                if t >= self.max_seconds:
                    self.stopped = "long"
                    break
                if self.deadline is not None and time.monotonic() > self.deadline:
                    self.stopped = "time"
                    break
                # One frame per step of the sampling grid: the first shown in it.
                if t + 1e-6 < next_t:
                    continue
                if self.sampled >= self.max_frames:
                    self.stopped = "frames"
                    break
                image = _upright(_convert(frame), frame.rotation)
                self.size = (image.shape[1], image.shape[0])
                self.sampled += 1
                self.analysed_s = t
                next_t = (np.floor(t / step + 1e-6) + 1) * step
                yield ClipFrame(round(t, 3), image)
        except (av.error.FFmpegError, ValueError, OSError, EOFError) as exc:
            if not self.sampled:
                raise ClipError("unreadable", str(exc)) from exc
            self.stopped = "broken"
            self.error = str(exc)
        if self.sampled == 0:
            raise ClipError("no_frames", f"{self.decoded} frames decoded, none shown")
        # The last frame is shown for one step: a 2-second GIF of 2 frames lasts 2 seconds.
        self.analysed_s = round(min(self.analysed_s + step, self.max_seconds), 3)

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> "Clip":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_clip(
    data: bytes,
    *,
    fps: float = 4.0,
    max_frames: int = 240,
    max_seconds: float = 60.0,
    max_pixels: int = MAX_PIXELS,
    deadline: float | None = None,
) -> Clip:
    """Open the bytes of a clip (nothing decoded yet); ClipError when they are no clip, hold
    no video, or have frames too large."""
    import io

    import av

    demuxer = container_of(data)
    if demuxer is None:
        raise ClipError("not_video", "not MP4, MOV, WebM, Matroska, GIF or AVI")
    try:
        container = av.open(io.BytesIO(data), format=_DEMUXERS[demuxer])
    except (av.error.FFmpegError, ValueError, OSError, EOFError) as exc:
        raise ClipError("unreadable", str(exc)) from exc
    try:
        if not container.streams.video:
            reason = "audio_only" if container.streams.audio else "unreadable"
            raise ClipError(reason, "no video stream")
        stream = container.streams.video[0]
        context = stream.codec_context
        width, height = int(context.width or 0), int(context.height or 0)
        if width * height > max_pixels:
            raise ClipError("too_many_pixels", f"{width}×{height}")
        if not width or not height:
            raise ClipError("unreadable", "no frame size")
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        if rate > 2 * fps and demuxer != "gif":
            context.skip_frame = "NONREF"
        return Clip(
            container,
            stream,
            declared_s=_declared(container, stream),
            fps=fps,
            max_frames=max_frames,
            max_seconds=max_seconds,
            deadline=deadline,
        )
    except BaseException:
        container.close()
        raise


def _declared(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base:
        return round(float(stream.duration * stream.time_base), 3)
    if container.duration is not None:
        return round(container.duration / 1_000_000, 3)  # AV_TIME_BASE
    return None


def _turn(rotation: float) -> int:
    """Degrees clockwise that show a frame upright, from FFmpeg's counterclockwise rotation."""
    return round(-rotation / 90) % 4 * 90


def _convert(frame: Any) -> np.ndarray:
    """The frame as BGR, shrunk to MAX_SIDE (swscale's area filter) when it is larger."""
    scale = min(1.0, MAX_SIDE / max(frame.width, frame.height))
    if scale == 1.0:
        return frame.to_ndarray(format="bgr24")
    size = (max(2, round(frame.width * scale)), max(2, round(frame.height * scale)))
    return frame.reformat(*size, format="bgr24", interpolation="AREA").to_ndarray()


def _upright(image: np.ndarray, rotation: float | None) -> np.ndarray:
    turns = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
    degrees = _turn(rotation or 0.0)
    return np.ascontiguousarray(cv2.rotate(image, turns[degrees])) if degrees else image


@dataclass
class FrameFaces:
    t: float
    faces: list[Face]


class FaceFollower:
    """The faces of a clip's frames, in order: a full search (both passes) every
    FULL_SEARCH_SECONDS; between them each face of the previous frame is looked for again
    around its box (the detector's second look alone), and with none to follow the coarse
    pass alone looks for a face filling much of the frame. A clip's 240 frames cost about 40
    full searches instead of 240, and a face that comes in small is found within
    FULL_SEARCH_SECONDS. One follower per clip, fed its frames in order (from any thread)."""

    def __init__(self) -> None:
        self._boxes: list[tuple[float, float, float, float]] = []
        self._searched_at: float | None = None

    def faces(self, frame: ClipFrame) -> FrameFaces:
        image = frame.image
        if self._searched_at is None or frame.t - self._searched_at >= FULL_SEARCH_SECONDS:
            detections = detect(image)
            self._searched_at = frame.t
        elif self._boxes:
            followed = [d for d in (follow(image, box) for box in self._boxes) if d is not None]
            detections = _distinct(followed)
        else:
            detections = detect(image, fine=False)
        self._boxes = [d.box for d in detections]
        return FrameFaces(frame.t, aligned_faces(image, detections))


def _distinct(detections: list[Any]) -> list[Any]:
    """Without a second box on a face already boxed (two followed faces met)."""
    kept: list[Any] = []
    for d in detections:
        if all(box_iou(d.box, k.box) < SAME_FACE_IOU for k in kept):
            kept.append(d)
    return kept


class ClipAnalysis:
    """A clip read, its faces found and classified step by step: each `step()` takes the next
    STEP_FRAMES sampled frames through the follower and the model in one call. The worker runs
    the steps on a thread of lower priority and can stop between two (a shutdown); `emobot
    predict` runs them in a row. `result()` is what is stored and printed (ml/timeline.py)."""

    STEP_FRAMES = 8

    def __init__(self, clip: Clip, classifier: "Predictor"):
        self.clip = clip
        self.classifier = classifier
        self._frames = clip.frames()
        self._follower = FaceFollower()
        self.rows: list[dict[str, Any]] = []
        self.faces = 0
        self.done = False
        # CPU seconds the steps took on their thread: what the clip costs whatever else the
        # machine is doing (its wall time depends on the neighbours).
        self.cpu_s = 0.0

    def step(self) -> bool:
        """Analyse the next frames; False once the clip is read to its end (or a limit)."""
        started = time.thread_time()
        try:
            return self._step()
        finally:
            self.cpu_s += time.thread_time() - started

    def _step(self) -> bool:
        found = [
            self._follower.faces(frame)
            for frame in itertools.islice(self._frames, self.STEP_FRAMES)
        ]
        crops = [face.crop for frame in found for face in frame.faces]
        probs = self.classifier.predict(np.stack(crops)) if crops else np.zeros((0, 4))
        start = 0
        for frame in found:
            rows = probs[start : start + len(frame.faces)]
            start += len(frame.faces)
            self.rows.append(
                {
                    "t": frame.t,
                    "faces": [
                        {
                            "box": [int(v) for v in face.box],
                            "probs": [round(float(p), 4) for p in row],
                        }
                        for face, row in zip(frame.faces, rows, strict=True)
                    ],
                }
            )
        self.faces += len(crops)
        self.done = len(found) < self.STEP_FRAMES
        return not self.done

    def result(self) -> dict[str, Any]:
        """Every sampled frame with its faces (box, probabilities, track), the kept tracks (the
        main face first) and how much of the clip was read."""
        from emobot.labels import CLASSES
        from ml.timeline import link_tracks

        clip = self.clip
        kept = link_tracks(self.rows)
        declared = clip.declared_s
        return {
            "kind": "video",
            "classes": list(CLASSES),
            "width": clip.size[0],
            "height": clip.size[1],
            "duration_s": declared if declared is not None else clip.analysed_s,
            "analysed_s": min(clip.analysed_s, declared) if declared else clip.analysed_s,
            "fps": clip.fps,
            # Longer than what is analysed: the first max_seconds only.
            "cut": clip.stopped == "long" or (declared or 0) > clip.max_seconds,
            "stopped": clip.stopped,
            "frames": self.rows,
            "tracks": kept,
            "cpu_ms": round(self.cpu_s * 1000, 1),
        }

    def close(self) -> None:
        self._frames.close()
        self.clip.close()


def analyse(data: bytes, classifier: "Predictor", **limits: Any) -> dict[str, Any]:
    """A whole clip at once (`emobot predict`, tests); ClipError as open_clip."""
    with open_clip(data, **limits) as clip:
        analysis = ClipAnalysis(clip, classifier)
        try:
            while analysis.step():
                pass
            return analysis.result()
        finally:
            analysis.close()
