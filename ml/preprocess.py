"""Turning 48×48 grey face crops into model input, identically in training and inference.

Models carry this step inside their graph (ml/layers.py: Standardise); the NumPy version here
feeds flatbuffers converted before that, which take standardised faces.
"""

import numpy as np

FACE_SIZE = 48
# A face's spread is never taken below this: a nearly flat face is not blown up into noise.
MIN_SPREAD = 8.0


def standardise(faces: np.ndarray) -> np.ndarray:
    """uint8 faces (N, 48, 48) → float32 (N, 48, 48, 1), each face to zero mean and unit spread.

    Per-face standardisation removes brightness and contrast, which differ far more between
    a phone photo and FER2013 than the expressions do.
    """
    x = faces.astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), keepdims=True)
    return ((x - mean) / np.maximum(std, MIN_SPREAD))[..., None]
