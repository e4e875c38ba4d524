"""A clip's faces over time: linked into tracks, smoothed, summed up.

A clip's result (what the worker stores, `emobot predict --json` prints) lists its sampled
frames with every face's box and probabilities; `link_tracks` numbers the faces so that one
person keeps one number across frames, `timeline` turns the kept tracks into smoothed curves
and a summary. Pure NumPy: the worker, the command line and the chart share it.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emobot.labels import CLASSES

# A face is the same person as a face of an earlier frame (at most MAX_GAP_S before) when their
# boxes overlap this much, or their centres are this close (in box widths): a head turning or
# the camera moving between two frames; or back in the same place after leaving the frame.
LINK_IOU = 0.3
LINK_CENTRE = 0.5
MAX_GAP_S = 5.0
# The largest few people are kept (size × time on screen); the rest are passers-by.
MAX_TRACKS = 4
# Probabilities are averaged over this window (seconds, centred): a blink or one badly aligned
# frame does not flip the label, and an expression held for a second still shows.
SMOOTH_S = 0.6
# A different emotion on the main face is a moment worth naming when it lasts this long.
MOMENT_MIN_S = 0.5
MAX_MOMENTS = 2


def box_iou(a: tuple[float, ...] | list[float], b: tuple[float, ...] | list[float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return float(inter / (a[2] * a[3] + b[2] * b[3] - inter))


def _near(a: list[float], b: list[float]) -> bool:
    if box_iou(a, b) >= LINK_IOU:
        return True
    ca = np.array([a[0] + a[2] / 2, a[1] + a[3] / 2])
    cb = np.array([b[0] + b[2] / 2, b[1] + b[3] / 2])
    return float(np.hypot(*(ca - cb))) <= LINK_CENTRE * max(a[2], b[2])


def link_tracks(frames: list[dict[str, Any]]) -> list[int]:
    """Give every face of `frames` (each {"t", "faces": [{"box", …}]}) a "track" number, the
    same for one person across frames (matched by position to the faces of the last frames,
    best overlap first); returns the numbers of the kept tracks, the main face first: the
    largest on screen longest (the sum of its box areas), then the next, up to MAX_TRACKS."""
    last: dict[int, tuple[float, list[float]]] = {}  # track -> (time, box) last seen
    area: dict[int, float] = {}
    next_id = 0
    for frame in frames:
        t = frame["t"]
        live = {k: box for k, (seen, box) in last.items() if t - seen <= MAX_GAP_S}
        pairs = sorted(
            (
                (-box_iou(face["box"], box), i, k)
                for i, face in enumerate(frame["faces"])
                for k, box in live.items()
                if _near(face["box"], box)
            ),
        )
        taken_faces: set[int] = set()
        taken_tracks: set[int] = set()
        for _, i, k in pairs:
            if i in taken_faces or k in taken_tracks:
                continue
            frame["faces"][i]["track"] = k
            taken_faces.add(i)
            taken_tracks.add(k)
        for i, face in enumerate(frame["faces"]):
            if i not in taken_faces:
                face["track"] = next_id
                next_id += 1
            k = face["track"]
            last[k] = (t, face["box"])
            area[k] = area.get(k, 0.0) + face["box"][2] * face["box"][3]
    ranked = sorted(area, key=lambda k: (-area[k], k))
    return ranked[:MAX_TRACKS]


@dataclass
class Track:
    number: int  # 1 for the main face, as the chart and the summary count
    times: np.ndarray  # (n,) seconds
    probs: np.ndarray  # (n, 4) smoothed, CLASSES order
    sure: np.ndarray  # (n,) bool: top smoothed probability ≥ unsure_below

    @property
    def labels(self) -> list[str | None]:
        """Per frame: the class, or None where unsure."""
        return [
            CLASSES[int(k)] if ok else None
            for k, ok in zip(self.probs.argmax(axis=1), self.sure, strict=True)
        ]


@dataclass
class Summary:
    label: str | None  # the main face's most frequent sure emotion; None: no face, or unsure
    shares: dict[str, float]  # per class: the share of the main face's frames
    unsure: float  # the share of its frames with no sure emotion
    moments: list[tuple[str, float]] = field(default_factory=list)  # (class, start in s)
    faces: int = 0  # tracks kept

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "shares": self.shares,
            "unsure": self.unsure,
            "moments": [{"label": c, "t": t} for c, t in self.moments],
            "faces": self.faces,
        }


@dataclass
class Timeline:
    tracks: list[Track]  # the main face first
    summary: Summary
    duration_s: float


def smooth(times: np.ndarray, probs: np.ndarray, window_s: float = SMOOTH_S) -> np.ndarray:
    """Each row averaged with the rows within window_s / 2 of its time (by time, so a
    variable frame rate or a gap smooths no further than that)."""
    out = np.empty_like(probs)
    for i, t in enumerate(times):
        near = np.abs(times - t) <= window_s / 2 + 1e-6
        out[i] = probs[near].mean(axis=0)
    return out


def timeline(result: dict[str, Any], unsure_below: float) -> Timeline:
    """The kept tracks of a clip's result, smoothed, and the summary of its main face."""
    tracks = []
    for number, k in enumerate(result.get("tracks", []), start=1):
        seen = [
            (frame["t"], face["probs"])
            for frame in result["frames"]
            for face in frame["faces"]
            if face.get("track") == k
        ]
        times = np.array([t for t, _ in seen], np.float64)
        probs = smooth(times, np.array([p for _, p in seen], np.float64))
        tracks.append(Track(number, times, probs, probs.max(axis=1) >= unsure_below))
    duration = float(result.get("analysed_s") or result.get("duration_s") or 0.0)
    return Timeline(tracks, summarise(tracks), duration)


def summarise(tracks: list[Track]) -> Summary:
    if not tracks:
        return Summary(None, {c: 0.0 for c in CLASSES}, 0.0)
    main = tracks[0]
    labels = main.labels
    n = len(labels)
    shares = {c: round(sum(label == c for label in labels) / n, 3) for c in CLASSES}
    unsure = round(sum(label is None for label in labels) / n, 3)
    best = max(CLASSES, key=lambda c: shares[c])
    label = best if shares[best] > 0 else None
    return Summary(label, shares, unsure, _moments(main, label), len(tracks))


def _moments(track: Track, usual: str | None) -> list[tuple[str, float]]:
    """Where the main face changes to another sure emotion than its usual one for at least
    MOMENT_MIN_S: (class, start), earliest first, one per class."""
    moments: list[tuple[str, float]] = []
    labels = track.labels
    i = 0
    while i < len(labels):
        j = i
        while j + 1 < len(labels) and labels[j + 1] == labels[i]:
            j += 1
        # A run lasts until the next frame starts (the last frame: one sampling step).
        end = track.times[j + 1] if j + 1 < len(labels) else track.times[j] + _step(track)
        label = labels[i]
        if (
            i > 0  # how the clip starts is no change
            and label is not None
            and label != usual
            and end - track.times[i] >= MOMENT_MIN_S
            and all(c != label for c, _ in moments)
        ):
            moments.append((label, round(float(track.times[i]), 2)))
        i = j + 1
    return moments[:MAX_MOMENTS]


def _step(track: Track) -> float:
    return float(np.median(np.diff(track.times))) if len(track.times) > 1 else 0.25


def clock(seconds: float) -> str:
    """0:07, 1:02 (whole seconds, as a player shows them)."""
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"
