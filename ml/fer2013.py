"""Reading dataset archives and finding FER2013's known flaws.

Two layouts are read: FER2013's Kaggle layout (`train/angry/Training_1.jpg`, seven emotions)
and the platform's own export (`train/negative/<sha>.jpg`, four classes). The importer, the
evaluation protocol and the archive trainer all read zips through this module, so that they
agree on what every file is.
"""

import hashlib
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from emobot.face_hash import FaceHash
from emobot.labels import CLASSES, FER_TO_CLASS, SPLITS
from ml.near_dupes import groups as linked_groups
from ml.near_dupes import near_pairs

# A blank image: every pixel within this distance of the image's mean.
_BLANK_SPREAD = 3


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif")


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One image of an archive: `train/angry/Training_123.jpg` or `test/happy/<sha>.jpg`."""

    name: str
    split: str
    label: str
    emotion: str | None  # FER2013's seven-class emotion, where the folder names one
    data: bytes
    sha256: str


def iter_archive(path: Path) -> Iterator[ArchiveFile]:
    """Yield every image of the archive in name order; anything else in the zip is skipped."""
    with zipfile.ZipFile(path) as archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            parts = info.filename.split("/")
            if info.is_dir() or len(parts) != 3 or not parts[2].lower().endswith(IMAGE_SUFFIXES):
                continue
            split, folder, _ = parts
            if split not in SPLITS or (folder not in FER_TO_CLASS and folder not in CLASSES):
                continue
            emotion = folder if folder in FER_TO_CLASS else None
            label = FER_TO_CLASS[folder] if emotion else folder
            data = archive.read(info)
            sha = hashlib.sha256(data).hexdigest()
            yield ArchiveFile(info.filename, split, label, emotion, data, sha)


def decode_grey(data: bytes) -> np.ndarray | None:
    """Decode image bytes to a 2-D uint8 grey array, or None when they are no image."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    return image


def is_blank(image: np.ndarray) -> bool:
    return int(image.max()) - int(image.min()) <= _BLANK_SPREAD


@dataclass
class Distinct:
    """All files of the archive that share one content hash."""

    sha256: str
    files: list[ArchiveFile] = field(default_factory=list)

    @property
    def first(self) -> ArchiveFile:
        return self.files[0]

    @property
    def splits(self) -> set[str]:
        return {f.split for f in self.files}

    @property
    def labels(self) -> set[str]:
        return {f.label for f in self.files}

    @property
    def emotions(self) -> set[str | None]:
        return {f.emotion for f in self.files}

    @property
    def split(self) -> str:
        # A file that is in the test split anywhere stays a test image: training never sees it.
        return "test" if "test" in self.splits else "train"

    @property
    def leak(self) -> bool:
        return self.splits == {"train", "test"}

    @property
    def conflict(self) -> bool:
        return len(self.labels) > 1

    @property
    def label(self) -> str:
        """The label of the copies in the image's own split, the most common one first."""
        own = [f.label for f in self.files if f.split == self.split]
        return max(sorted(set(own)), key=own.count)

    @property
    def emotion(self) -> str | None:
        own = [f.emotion for f in self.files if f.split == self.split and f.emotion]
        return max(sorted(set(own)), key=own.count) if own else None


def group_by_content(files: list[ArchiveFile]) -> list[Distinct]:
    """Collapse byte-identical files, keeping archive order of first appearance."""
    groups: dict[str, Distinct] = {}
    for f in files:
        groups.setdefault(f.sha256, Distinct(f.sha256)).files.append(f)
    return list(groups.values())


@dataclass
class NearCopies:
    """Distinct images that are near-copies of each other (ml.near_dupes): re-encoded, resized
    or lightly edited versions of one face, which byte comparison cannot see."""

    groups: list[list[str]]  # sha256 of the images of each group (two or more)
    conflicting: set[str]  # images of groups whose labels differ: left out of training

    @property
    def images(self) -> int:
        return sum(len(g) for g in self.groups)


def find_near_copies(groups: list[Distinct], hashes: dict[str, FaceHash]) -> NearCopies:
    """The groups of near-copies among the distinct images that have hashes."""
    hashed = [g for g in groups if g.sha256 in hashes]
    pairs = near_pairs([hashes[g.sha256] for g in hashed])
    found = [[hashed[i] for i in members] for members in linked_groups(len(hashed), pairs)]
    conflicting = {
        g.sha256 for members in found if len({g.label for g in members}) > 1 for g in members
    }
    return NearCopies([[g.sha256 for g in members] for members in found], conflicting)


@dataclass
class ArchiveReport:
    """What the archive holds and which of its flaws were found."""

    files: int = 0
    distinct: int = 0
    per_class: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    extra_copies: int = 0
    duplicate_groups: int = 0
    leaks: int = 0
    conflicts_7: int = 0
    conflicts_4: int = 0
    blanks: int = 0
    near_groups: int = 0
    near_images: int = 0
    near_conflict_groups: int = 0
    near_conflict_images: int = 0
    near_leak_groups: int = 0  # near-copy groups with images in both splits

    @classmethod
    def build(
        cls,
        files: list[ArchiveFile],
        groups: list[Distinct],
        blank: set[str],
        near: NearCopies | None = None,
    ) -> "ArchiveReport":
        report = cls(files=len(files), distinct=len(groups))
        if near is not None:
            split = {g.sha256: g.split for g in groups}
            report.near_groups = len(near.groups)
            report.near_images = near.images
            report.near_conflict_groups = sum(g[0] in near.conflicting for g in near.groups)
            report.near_conflict_images = len(near.conflicting)
            report.near_leak_groups = sum(len({split[s] for s in g}) > 1 for g in near.groups)
        report.blanks = sum(len(g.files) for g in groups if g.sha256 in blank)
        for f in files:
            report.per_class[(f.split, f.label)] += 1
        for g in groups:
            if len(g.files) > 1:
                report.duplicate_groups += 1
                report.extra_copies += len(g.files) - 1
                report.conflicts_7 += len(g.emotions) > 1
                report.conflicts_4 += g.conflict
            # Counted per test file, as "test images with an identical copy in train".
            if g.leak:
                report.leaks += sum(f.split == "test" for f in g.files)
        return report
