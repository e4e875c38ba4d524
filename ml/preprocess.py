"""Turning 48×48 grey face crops into model input, identically in training and inference."""

import numpy as np

FACE_SIZE = 48


def standardise(faces: np.ndarray) -> np.ndarray:
    """uint8 faces (N, 48, 48) → float32 (N, 48, 48, 1), each face to zero mean and unit spread.

    Per-face standardisation removes brightness and contrast, which differ far more between
    a phone photo and FER2013 than the expressions do.
    """
    x = faces.astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), keepdims=True)
    return ((x - mean) / np.maximum(std, 8.0))[..., None]
