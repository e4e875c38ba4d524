"""Clips for `emobot predict`: the timeline of each clip (video notes, GIFs, videos), its JSON
line, its chart."""

import json
from pathlib import Path
from typing import Any

from emobot.labels import CLASSES
from ml.predict_files import CLIP_SUFFIXES


def is_clip(path: Path) -> bool:
    """A video file, or a GIF of more than one frame (a still GIF is a photo)."""
    suffix = path.suffix.lower()
    if suffix in CLIP_SUFFIXES:
        return True
    if suffix != ".gif":
        return False
    from PIL import Image

    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1) > 1
    except (OSError, ValueError):
        return False


def clip_json(path: Path, result: dict[str, Any], unsure_below: float) -> dict[str, Any]:
    """`{"path", "kind": "video", "duration_s", "frames": [{"t", "faces": [{"box", "label",
    "probs"}]}], "summary": {"label", "shares", …}}`."""
    from ml.timeline import timeline

    frames = [
        {
            "t": frame["t"],
            "faces": [
                {
                    "box": face["box"],
                    "label": CLASSES[max(range(len(CLASSES)), key=lambda k: face["probs"][k])],
                    "probs": dict(zip(CLASSES, face["probs"], strict=True)),
                    "track": face["track"],
                }
                for face in frame["faces"]
            ],
        }
        for frame in result["frames"]
    ]
    summary = timeline(result, unsure_below).summary
    return {
        "path": str(path),
        "kind": "video",
        "duration_s": result["duration_s"],
        "analysed_s": result["analysed_s"],
        "frames": frames,
        "summary": summary.as_json(),
    }


def clip_table(line: dict[str, Any]) -> str:
    """The timeline: one row per sampled frame, each face with its track and emotion."""
    summary = line["summary"]
    share = summary["shares"].get(summary["label"], 0) if summary["label"] else 0
    moments = ", ".join(f"{m['label']} at {m['t']:.1f} s" for m in summary["moments"])
    head = (
        f"{line['path']}: video, {line['duration_s']:.1f} s, {len(line['frames'])} frames, "
        f"faces {summary['faces']}: mostly {summary['label'] or 'unsure'} ({share:.0%})"
        + (f", {moments}" if moments else "")
    )
    rows = [head]
    for frame in line["frames"]:
        faces = "  ".join(
            f"#{face['track']} {face['label']} {face['probs'][face['label']]:.2f}"
            for face in frame["faces"]
        )
        rows.append(f"  {frame['t']:6.2f} s  {faces or '-'}")
    return "\n".join(rows)


def predict_clip(
    path: Path, classifier: Any, settings: Any, *, as_json: bool, plot: Path | None
) -> str | None:
    """What `emobot predict` prints for one clip; raises ClipError (or OSError)."""
    from ml.clips import analyse

    result = analyse(
        path.read_bytes(),
        classifier,
        fps=settings.clip_fps,
        max_frames=settings.clip_max_frames,
        max_seconds=settings.clip_max_seconds,
    )
    line = clip_json(path, result, settings.unsure_below)
    if plot is not None:
        from ml.chart import draw_timeline
        from ml.timeline import timeline

        chart = draw_timeline(
            timeline(result, settings.unsure_below),
            {c: c for c in CLASSES},
            title="Emotions over time",
            face_title="face {number}",
            unsure_label="unsure",
            seconds_label="seconds",
        )
        (plot / f"{path.stem}.png").write_bytes(chart)
    return json.dumps(line, ensure_ascii=False) if as_json else clip_table(line)
