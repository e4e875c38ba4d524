"""How fast the model is on this machine (face detection: `benchmarks/faces.py`).

1. Model load time (`Classifier.load` plus the first call, which builds the predict function).
2. Faces/s of `Classifier.predict` at batch 1, 8, 32 and 64: one compiled call per batch, as
   the worker runs it.

    .venv/bin/python -m benchmarks.model [--seconds 3] [--model PATH] [--json PATH]
"""

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BATCHES = (1, 8, 32, 64)


def timed(fn: Callable[[], Any], seconds: float, min_runs: int = 3) -> list[float]:
    """Seconds per call, calling `fn` for about `seconds` (after one warm-up call)."""
    fn()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_runs or time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def model_load(path: Path) -> dict[str, float]:
    from ml.inference import Classifier

    start = time.perf_counter()
    classifier = Classifier.load(path)
    loaded = time.perf_counter() - start
    classifier.predict(np.zeros((1, 48, 48), np.uint8))
    return {
        "load_s": round(loaded, 3),
        "load_and_first_call_s": round(time.perf_counter() - start, 3),
    }


def model_speed(path: Path, seconds: float) -> dict[int, dict[str, float]]:
    from ml.inference import Classifier

    classifier = Classifier.load(path)
    rng = np.random.default_rng(0)
    result = {}
    for batch in BATCHES:
        faces = rng.integers(0, 256, (batch, 48, 48), dtype=np.uint8)
        median = statistics.median(timed(lambda f=faces: classifier.predict(f), seconds))
        result[batch] = {
            "ms_per_batch": round(median * 1000, 2),
            "faces_per_s": round(batch / median, 1),
            "ms_per_face": round(median * 1000 / batch, 3),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement (default 3)")
    parser.add_argument("--model", type=Path, help="model file (default: the shipped one)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the numbers here")
    args = parser.parse_args()

    from ml.inference import shipped_model_path

    path = args.model or shipped_model_path()
    load = model_load(path)
    speed = model_speed(path, args.seconds)
    load_avg = os.getloadavg()[0]
    print(f"model {path}, {os.cpu_count()} CPUs, load average {load_avg:.1f}")
    print(f"load {load['load_s']:.2f} s, with the first call {load['load_and_first_call_s']:.2f} s")
    print(f"{'batch':>6} {'ms/batch':>10} {'ms/face':>9} {'faces/s':>9}")
    for batch, row in speed.items():
        print(
            f"{batch:>6} {row['ms_per_batch']:>10.2f} {row['ms_per_face']:>9.3f} "
            f"{row['faces_per_s']:>9.1f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "model": str(path),
                    "cpus": os.cpu_count(),
                    "machine": platform.processor() or platform.machine(),
                    "load_average": round(load_avg, 2),
                    "seconds_per_measurement": args.seconds,
                    "load": load,
                    "model_speed": speed,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
