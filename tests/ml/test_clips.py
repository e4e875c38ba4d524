"""Reading clips from memory (ml/clips.py) and their timeline (ml/timeline.py), on clips built
at test time from the public-domain faces (tests/clips.py) and the shipped model."""

import json
import time
from pathlib import Path

import numpy as np
import pytest

from ml.clips import ClipError, analyse, open_clip
from ml.inference import Classifier, shipped_model_path
from ml.timeline import clock, link_tracks, timeline
from tests.clips import audio_only, make_clip

UNSURE_BELOW = 0.6


@pytest.fixture(scope="module")
def model() -> Classifier:
    return Classifier.load(shipped_model_path())


def labels_at(result: dict, seconds: list[float]) -> list[str | None]:
    main = timeline(result, UNSURE_BELOW).tracks[0]
    return [main.labels[int(np.argmin(np.abs(main.times - s)))] for s in seconds]


@pytest.mark.parametrize("kind", ["note", "gif", "webm"])
def test_the_timeline_changes_when_the_face_does(model: Classifier, kind: str) -> None:
    data = make_clip(["happy", "neutral", "happy", "neutral"], kind=kind, size=(256, 256))
    result = analyse(data, model)
    assert result["duration_s"] == pytest.approx(4.0, abs=0.1)
    assert [f["t"] for f in result["frames"]][:5] == pytest.approx([0, 0.3, 0.5, 0.8, 1.0])
    assert labels_at(result, [0.4, 1.5, 2.5, 3.5]) == ["happy", "neutral", "happy", "neutral"]
    summary = timeline(result, UNSURE_BELOW).summary
    assert summary.faces == 1 and summary.label in ("happy", "neutral")
    assert summary.moments and summary.moments[0][1] == pytest.approx(1.0, abs=0.35)


def test_rotation_metadata_is_honoured(model: Classifier) -> None:
    # Stored sideways, shown upright by the display matrix as a phone writes it.
    data = make_clip(["happy", "neutral"], kind="mp4", size=(320, 240), rotation=90)
    result = analyse(data, model)
    assert (result["width"], result["height"]) == (320, 240)
    assert labels_at(result, [0.5, 1.5]) == ["happy", "neutral"]


def test_variable_frame_rate_is_sampled_by_time(model: Classifier) -> None:
    times = [0, 0.05, 0.1, 0.9, 1.2, 1.5, 1.52, 2.6, 2.9]
    data = make_clip(["happy", "neutral", "happy"], kind="mp4", size=(256, 256), frame_times=times)
    result = analyse(data, model)
    # One frame per quarter second at most, the first of each quarter.
    expected = [0, 0.9, 1.2, 1.5, 2.6, 2.9]
    assert [f["t"] for f in result["frames"]] == pytest.approx(expected, abs=0.01)
    assert labels_at(result, [0, 1.5, 2.9]) == ["happy", "neutral", "happy"]


def test_only_the_first_seconds_and_frames_are_read(model: Classifier) -> None:
    data = make_clip(["happy"] * 5, kind="mp4", size=(128, 128), fps=5)
    result = analyse(data, model, max_seconds=2.0)
    assert result["cut"] and result["analysed_s"] == pytest.approx(2.0)
    assert max(f["t"] for f in result["frames"]) < 2.0
    result = analyse(data, model, max_frames=3)
    assert len(result["frames"]) == 3 and result["stopped"] == "frames"


def test_a_deadline_stops_reading(model: Classifier) -> None:
    data = make_clip(["happy"] * 3, kind="mp4", size=(128, 128))
    with open_clip(data, deadline=time.monotonic() - 1) as clip, pytest.raises(ClipError) as error:
        list(clip.frames())
    assert error.value.reason == "no_frames"


def test_big_frames_are_shrunk_and_huge_ones_refused(model: Classifier) -> None:
    data = make_clip(["happy"], kind="mp4", size=(1280, 720), fps=2)
    with open_clip(data) as clip:
        frame = next(clip.frames())
    assert frame.image.shape[:2] == (360, 640)
    with pytest.raises(ClipError) as error:
        open_clip(data, max_pixels=1280 * 720 - 1)
    assert error.value.reason == "too_many_pixels"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GIF89a" + b"\x00" * 50, "unreadable"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "not_video"),
        (b"", "not_video"),
    ],
)
def test_bad_bytes_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ClipError) as error:
        analyse(data, None)  # type: ignore[arg-type]
    assert error.value.reason == reason


def test_audio_only_and_truncated_clips(model: Classifier) -> None:
    with pytest.raises(ClipError) as error:
        analyse(audio_only(), model)
    assert error.value.reason == "audio_only"
    whole = make_clip(["happy", "neutral"] * 2, kind="webm", size=(256, 256))
    # Cut in the middle of its media data: the frames before the cut are still answered (an
    # MP4 cut short loses its index, written last, and is unreadable: tests/worker).
    result = analyse(whole[: len(whole) * 3 // 4], model)
    assert 0 < len(result["frames"]) < 16


def test_tracks_are_linked_by_position_and_the_largest_kept() -> None:
    frames = [
        {"t": t, "faces": [{"box": [10 + t, 10, 100, 100]}, {"box": [300, 10, 40, 40]}]}
        for t in (0.0, 0.25, 0.5)
    ] + [{"t": 3.0, "faces": [{"box": [12, 11, 100, 100]}]}]
    kept = link_tracks(frames)
    assert kept == [0, 1]
    assert [f["faces"][0]["track"] for f in frames] == [0, 0, 0, 0]
    assert clock(67.9) == "1:07"


def test_emobot_predict_prints_the_timeline_json_and_the_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    (tmp_path / "clip.mp4").write_bytes(make_clip(["happy", "neutral"], size=(256, 256)))
    (tmp_path / "still.gif").write_bytes(make_clip(["happy"], kind="gif", size=(128, 128), fps=1))
    with pytest.raises(SystemExit) as done:
        main(["predict", "--json", "--plot", str(tmp_path / "out"), str(tmp_path / "clip.mp4")])
    assert done.value.code == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["kind"] == "video" and line["duration_s"] == pytest.approx(2.0, abs=0.1)
    assert set(line["frames"][0]) == {"t", "faces"}
    assert {"box", "label", "probs"} <= set(line["frames"][0]["faces"][0])
    assert line["summary"]["label"] in ("happy", "neutral") and "shares" in line["summary"]
    assert (tmp_path / "out" / "clip.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(SystemExit):
        main(["predict", str(tmp_path)])  # a folder: the clip found, the one-frame GIF a photo
    out = capsys.readouterr().out
    assert "clip.mp4: video, 2.0 s, 8 frames" in out and "still.gif: 1 face" in out
