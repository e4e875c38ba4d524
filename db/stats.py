"""The dataset in numbers, for `emobot stats` and the admin's /stats."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from db.samples import archive_file_counts, counts, flag_counts, trainable_counts
from emobot.labels import CLASSES


@dataclass
class DatasetStats:
    archive_files: dict[tuple[str, str], int]  # FER2013 files per (split, class), with copies
    stored: dict[tuple[str, str, str], int]  # active distinct images per (source, split, class)
    deleted: int
    flags: dict[str, int]
    trainable: dict[str, int]

    def table(self) -> str:
        sources = sorted({source for source, _, _ in self.stored})
        header = (
            f"{'split':<6} {'class':<9} {'files':>7}"
            + "".join(f" {s:>9}" for s in sources)
            + f" {'trainable':>9}"
        )
        lines = [
            f"{sum(self.archive_files.values()):,} FER2013 files read, "
            f"{sum(self.stored.values()):,} distinct images stored "
            f"({self.deleted:,} deleted)",
            "",
            header,
        ]
        for split in ("train", "test"):
            for label in CLASSES:
                row = f"{split:<6} {label:<9} {self.archive_files.get((split, label), 0):>7,}"
                row += "".join(f" {self.stored.get((s, split, label), 0):>9,}" for s in sources)
                row += f" {self.trainable.get(label, 0) if split == 'train' else 0:>9,}"
                lines.append(row)
        lines += [
            "",
            "files: FER2013 archive files before duplicate removal; per source: distinct "
            "images stored; trainable: what training uses",
            f"test images with a copy in train: {self.flags['leak']:,}; "
            f"conflicting labels: {self.flags['label_conflict']:,}; "
            f"blank: {self.flags['blank']:,}; "
            f"near-copies with conflicting labels: {self.flags['near_conflict']:,}",
        ]
        return "\n".join(lines)


async def dataset_stats(session: AsyncSession) -> DatasetStats:
    stored: dict[tuple[str, str, str], int] = {}
    deleted = 0
    for source, split, label, status, n in await counts(session):
        if status == "active":
            stored[(source, split, label)] = n
        else:
            deleted += n
    return DatasetStats(
        archive_files=await archive_file_counts(session),
        stored=stored,
        deleted=deleted,
        flags=await flag_counts(session),
        trainable=await trainable_counts(session),
    )
