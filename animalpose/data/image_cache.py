"""Decoded images kept in memory, so that each image of a dataset is decoded once, not once per epoch.

A training epoch crops every image again with new augmentation, but the decoded pixels never change:
:class:`ImageCache` keeps them (uint8, exactly what :func:`~animalpose.data.images.read_image` returns,
so a cached sample is bitwise the uncached one) up to a memory budget. Every use checks the file's
modification time and size first (one ``os.stat``), so a file replaced on disk is decoded again.

Images that do not fit the budget are decoded on each use (first come, first kept: no eviction, so an
epoch that walks the dataset in a new order never throws away what it will need again). Cached arrays
are read-only: a caller that wants to draw on one copies it.

With DataLoader worker processes (forked per epoch), what a worker adds dies with it; fill the cache in
the parent first (:meth:`animalpose.data.dataset.TopDownDataset.fill_cache`) and every worker shares
those pages copy-on-write.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from animalpose.data.images import read_image


@dataclass
class _Entry:
    stamp: tuple[int, int]  # (st_mtime_ns, st_size) of the file when it was decoded
    image: np.ndarray


@dataclass
class ImageCache:
    """Decoded images (and video frames) keyed by (path, frame index), up to ``max_bytes`` of pixels.

    Attributes:
        max_bytes: pixel memory the cache may hold (0 keeps nothing).
        hits, misses: uses served from memory, and decodes.
    """

    max_bytes: int
    hits: int = 0
    misses: int = 0
    _entries: dict[tuple[str, int | None], _Entry] = field(default_factory=dict, repr=False)
    _bytes: int = 0

    @property
    def nbytes(self) -> int:
        """Bytes of pixels held."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: tuple[str, int | None]) -> bool:
        """Whether (path, frame index) is held (unchecked against the file)."""
        return key in self._entries

    def read(self, path: str | Path, frame_index: int | None = None) -> np.ndarray:
        """(H, W, 3) uint8 RGB, read-only: from memory when the file is unchanged, else decoded (and kept
        when it fits). Raises what :func:`read_image` raises (DataError naming the file)."""
        key = (str(path), frame_index)
        try:
            st = os.stat(key[0])
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:  # missing or unreadable: read_image says so, naming the file
            stamp = None
        entry = self._entries.get(key)
        if entry is not None:
            if stamp == entry.stamp:
                self.hits += 1
                return entry.image
            del self._entries[key]  # the file changed (or went): decode again
            self._bytes -= entry.image.nbytes
        self.misses += 1
        image = read_image(path, frame_index)
        if stamp is not None and self._bytes + image.nbytes <= self.max_bytes:
            image.flags.writeable = False
            self._entries[key] = _Entry(stamp, image)
            self._bytes += image.nbytes
        return image
