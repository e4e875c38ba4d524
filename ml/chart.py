"""The picture answering a clip: the emotions of its faces over time.

The main face gets the large chart, its four smoothed probabilities as lines over the clip's
seconds, its unsure stretches shaded; each other kept face a small panel below. Drawn by
matplotlib's Agg canvas without pyplot (no global figure state, safe in threads), imported only
when a chart is drawn: a worker that never answers a clip never loads it.
"""

import io
from typing import Any

import numpy as np

from emobot.labels import CLASSES
from ml.timeline import Timeline, Track

# One colour per class, in CLASSES order, the same in every chart.
COLOURS = {"negative": "#c0392b", "happy": "#27ae60", "surprise": "#f39c12", "neutral": "#2980b9"}
UNSURE_SHADE = "#d5d8dc"


def _stretches(times: np.ndarray, mask: np.ndarray, step: float) -> list[tuple[float, float]]:
    """(start, end) of each run of True in `mask`, each frame lasting until the next."""
    out: list[tuple[float, float]] = []
    for i, on in enumerate(mask):
        if not on:
            continue
        end = float(times[i + 1]) if i + 1 < len(times) else float(times[i]) + step
        if out and abs(out[-1][1] - float(times[i])) < 1e-6:
            out[-1] = (out[-1][0], end)
        else:
            out.append((float(times[i]), end))
    return out


def draw_timeline(
    timeline: Timeline,
    names: dict[str, str],
    *,
    title: str,
    face_title: str,
    unsure_label: str,
    seconds_label: str,
) -> bytes:
    """PNG bytes of the chart. `names`: each class as the person reads it; `face_title`: a
    panel's title with `{number}` for the face's number (1 is the main face)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    others = timeline.tracks[1:]
    rows = 1 + (1 if others else 0)
    figure = Figure(figsize=(8, 4.2 + (1.8 if others else 0)), dpi=100)
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(rows, max(1, len(others)), height_ratios=[2.4, 1][:rows])
    end = max(timeline.duration_s, 0.5)
    main_axes = figure.add_subplot(grid[0, :])
    handles = _panel(main_axes, timeline.tracks[0] if timeline.tracks else None, names, end)
    main_axes.set_title(f"{title} · {face_title.format(number=1)}", fontsize=11, loc="left")
    main_axes.set_xlabel(seconds_label)
    handles.append(Patch(color=UNSURE_SHADE, label=unsure_label))
    main_axes.legend(handles=handles, loc="upper right", fontsize=8, ncol=5, framealpha=0.9)
    for column, track in enumerate(others):
        axes = figure.add_subplot(grid[1, column])
        _panel(axes, track, names, end, small=True)
        axes.set_title(face_title.format(number=track.number), fontsize=9, loc="left")
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _panel(
    axes: Any, track: Track | None, names: dict[str, str], end: float, *, small: bool = False
) -> list[Any]:
    axes.set_xlim(0, end)
    axes.set_ylim(0, 1.05 if small else 1.25)  # room for the legend above the lines
    axes.grid(True, alpha=0.3)
    axes.tick_params(labelsize=7 if small else 9)
    if track is None or not len(track.times):
        return []
    step = float(np.median(np.diff(track.times))) if len(track.times) > 1 else 0.25
    for start, stop in _stretches(track.times, ~track.sure, step):
        axes.axvspan(start, stop, color=UNSURE_SHADE, linewidth=0)
    lines = []
    # A gap (the face out of the frame) breaks the lines rather than bridging it.
    gaps = np.diff(track.times) > 3 * step
    for k, label in enumerate(CLASSES):
        values = track.probs[:, k].astype(float)
        times = track.times.astype(float)
        if gaps.any():
            cut = np.flatnonzero(gaps) + 1
            times = np.insert(times, cut, np.nan)
            values = np.insert(values, cut, np.nan)
        (line,) = axes.plot(
            times,
            values,
            color=COLOURS[label],
            linewidth=1.2 if small else 2.0,
            label=names.get(label, label),
            marker="o" if len(track.times) < 3 else None,
        )
        lines.append(line)
    return lines
