"""Perceptual hashes of face crops, to find re-encoded, resized or lightly edited copies of a
sample that a content hash (sha256) cannot see.

Two hashes of OpenCV's `img_hash` module, taken on the aligned 48×48 grey crop that training
uses (`ml.faces`), so that a copy is judged by the face it gives, whatever the photo around
it: pHash (64 bits, the signs of the lowest DCT frequencies) and BlockMean (256 bits, 16×16
block means against their median). Two crops are copies when both are close: pHash alone
matches too many different faces of similar pose and lighting, BlockMean alone misses
re-encodes. The thresholds and what they catch are measured by `benchmarks/near_dupes.py` on
FER2013 (numbers in benchmarks/README.md).
"""

from collections import defaultdict

import cv2
import numpy as np

from emobot.face_hash import BLOCK_MAX, PHASH_MAX, FaceHash


def photo_hash(data: bytes, box: list[int] | None) -> FaceHash:
    """The hashes of a stored photo's face: the crop training cuts at its stored box
    (ml.train_job.sample_face). ImageError when the bytes are no readable image."""
    from ml.faces import decode_image, face_at, whole_face  # the detector, only when needed

    image = decode_image(data)
    return face_hash(face_at(image, box).crop if box else whole_face(image).crop)


def face_hash(crop: np.ndarray) -> FaceHash:
    """The hashes of a 2-D uint8 face crop."""
    # The hashers are stateless between calls but not documented thread-safe: one per call
    # costs microseconds.
    phash = cv2.img_hash.PHash_create().compute(crop)[0]
    block = cv2.img_hash.BlockMeanHash_create(cv2.img_hash.BLOCK_MEAN_HASH_MODE_0).compute(crop)[0]
    return FaceHash(int.from_bytes(phash.tobytes(), signed=True), block.tobytes())


# pHash split into 9 pieces (eight of 7 bits, one of 8): two hashes at most 8 bits apart agree
# on at least one whole piece, so only hashes sharing a piece need comparing.
_PIECES = [(7 * i, 7) for i in range(8)] + [(56, 8)]


def near_pairs(hashes: list[FaceHash]) -> list[tuple[int, int]]:
    """Every pair (i, j), i < j, of copies among `hashes`, in index order."""
    if len(hashes) < 2:
        return []
    phash = np.array([h.phash for h in hashes], np.int64).view(np.uint64)
    block = np.frombuffer(b"".join(h.block for h in hashes), np.uint8).reshape(len(hashes), -1)
    found: set[tuple[int, int]] = set()
    for shift, width in _PIECES:
        piece = (phash >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        buckets: dict[int, list[int]] = defaultdict(list)
        for index, value in enumerate(piece.tolist()):
            buckets[value].append(index)
        for members in buckets.values():
            if len(members) < 2:
                continue
            ids = np.array(members)
            left, right = np.triu_indices(len(ids), 1)
            a, b = ids[left], ids[right]
            close = np.bitwise_count(phash[a] ^ phash[b]) <= PHASH_MAX
            a, b = a[close], b[close]
            close = np.bitwise_count(block[a] ^ block[b]).sum(axis=1) <= BLOCK_MAX
            found.update(zip(a[close].tolist(), b[close].tolist(), strict=True))
    return sorted(found)


def groups(count: int, pairs: list[tuple[int, int]]) -> list[list[int]]:
    """The connected groups (two or more members) that `pairs` link among `count` items."""
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        parent[root(a)] = root(b)
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(count):
        members[root(i)].append(i)
    return [m for m in members.values() if len(m) > 1]
