"""Labelled face arrays, the unit every data source yields and every model reads (no Keras)."""

from dataclasses import dataclass

import numpy as np

from emobot.labels import CLASSES


@dataclass
class Faces:
    """uint8 faces (N, 48, 48) and their class indices (N,).

    `targets` (N, 4), where given, are soft training targets (FER+ vote shares) whose most
    likely class is `y`; without them the target is `y` alone. `aligned` (N, 48, 48), where
    given, holds the same faces as inference crops them (ml.faces.align): training shows each
    face either way, at random.
    """

    x: np.ndarray
    y: np.ndarray
    targets: np.ndarray | None = None
    aligned: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: np.ndarray) -> "Faces":
        return Faces(
            self.x[idx],
            self.y[idx],
            None if self.targets is None else self.targets[idx],
            None if self.aligned is None else self.aligned[idx],
        )

    def soft_targets(self) -> np.ndarray:
        if self.targets is not None:
            return self.targets.astype(np.float32)
        return np.eye(len(CLASSES), dtype=np.float32)[self.y]

    def counts(self) -> dict[str, int]:
        return {c: int((self.y == i).sum()) for i, c in enumerate(CLASSES)}
