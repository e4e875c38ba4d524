"""Build tests/data/fer_small.zip from the real FER2013 archive (run once; the result is committed).

Three images per split and emotion, plus FER2013's flaws in miniature: a byte-identical copy
inside train, a test image that also sits in train, a copy with a conflicting label; and a
blank image (train/angry/Training_10131352.jpg happens to be among the first three).
"""

import sys
import zipfile
from pathlib import Path

from ml.fer2013 import iter_archive

PER_FOLDER = 3


def main(source: Path, target: Path) -> None:
    taken: dict[tuple[str, str], int] = {}
    files = []
    for f in iter_archive(source):
        key = (f.split, f.emotion or f.label)
        if taken.get(key, 0) < PER_FOLDER:
            taken[key] = taken.get(key, 0) + 1
            files.append((f.name, f.data))
    first_train = next(data for name, data in files if name.startswith("train/happy/"))
    first_test = next(data for name, data in files if name.startswith("test/sad/"))
    files += [
        ("train/happy/Training_dup00001.jpg", first_train),  # duplicate within train
        ("train/sad/Training_leak0001.jpg", first_test),  # test image leaked into train
        ("train/neutral/Training_conflict1.jpg", first_train),  # same bytes, other label
    ]
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in files:
            archive.writestr(name, data)
    print(f"{len(files)} files written to {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
