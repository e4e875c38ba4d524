"""A face crop's perceptual hashes as stored (samples.phash, samples.block_hash) and when two
are copies: shared by ml.near_dupes, which computes them, and db/, which matches them in SQL.
Pure Python: the database layer imports it without OpenCV."""

from dataclasses import dataclass

PHASH_MAX = 8  # bits of 64
BLOCK_MAX = 24  # bits of 256
PHASH_BITS = 64
BLOCK_BITS = 256


@dataclass(frozen=True)
class FaceHash:
    phash: int  # the 64 bits as a signed integer: a PostgreSQL bigint holds it as it is
    block: bytes  # 32 bytes

    def distance(self, other: "FaceHash") -> tuple[int, int]:
        """Differing bits of pHash and of BlockMean."""
        phash = ((self.phash ^ other.phash) & (2**PHASH_BITS - 1)).bit_count()
        block = (int.from_bytes(self.block) ^ int.from_bytes(other.block)).bit_count()
        return phash, block

    def is_copy(self, other: "FaceHash") -> bool:
        phash, block = self.distance(other)
        return phash <= PHASH_MAX and block <= BLOCK_MAX
