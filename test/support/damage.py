"""Damaged copies of recordings and stores: overwritten blocks, truncated files, damaged pages."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path


def copy_recording(source: Path, dest: Path) -> Path:
    """A writable copy of the rosbag2 folder ``source`` at ``dest``."""
    shutil.copytree(source, dest)
    for p in [dest, *dest.iterdir()]:
        os.chmod(p, os.stat(p).st_mode | stat.S_IWUSR)
    return dest


def storage_file(folder: Path) -> Path:
    files = [p for p in folder.iterdir() if p.suffix in (".mcap", ".db3")]
    assert len(files) == 1, files
    return files[0]


def overwrite(path: Path, fraction: float = 0.5, size: int = 4096, fill: bytes = b"\xab", align: int = 1) -> int:
    """Overwrite ``size`` bytes at ``fraction`` of ``path`` (offset rounded down to ``align``); the offset."""
    offset = int(os.path.getsize(path) * fraction) // align * align
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(fill * size)
    return offset


def truncate(path: Path, fraction: float) -> int:
    """Cut ``path`` to ``fraction`` of its size; the new size."""
    size = int(os.path.getsize(path) * fraction)
    os.truncate(path, size)
    return size
