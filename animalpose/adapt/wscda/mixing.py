"""Batches for WS-CDA drawn from three sources at a configurable ratio, deterministic for a seed.

WS-CDA (Cao et al., ICCV 2019) trains on (1) many labelled humans, (2) a few labelled animals of the
source species and (3) unlabelled animals of the target species. The three datasets are concatenated
in that order (``torch.utils.data.ConcatDataset([humans, labelled_animals, target_animals])``) and
:class:`MixedBatchSampler` yields lists of indices into the concatenation.

- **Ratio.** Every slot of the index stream is given to a source by smooth weighted round-robin
  (each source earns its ratio share per slot; the richest source takes the slot and pays 1). After any
  number of slots each source has received its exact share up to less than one slot, so every batch
  matches the ratio to within ±2 samples per source and the totals over an epoch to within ±1, with
  the sources interleaved rather than in blocks. A source with ratio 0 is never drawn.
- **Within a source** indices come from consecutive random permutations of that source (every sample
  once before any repeats), so the few labelled animals are recycled as often as the ratio asks.
- **Determinism.** The permutations depend only on (seed, epoch, source): the same seed and epoch give
  the same batches; :meth:`MixedBatchSampler.set_epoch` moves to another epoch's permutations.

:func:`select_few_labelled` picks the "few labelled animals", a configurable number per species.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from torch.utils.data import Sampler

from animalpose.errors import ConfigError

SOURCES = ("human", "labelled_animal", "target_animal")
#: Domain labels (y, z) of each source: y = 0 human / 1 animal, z = 0 source / 1 target species.
DOMAIN_LABELS = {"human": (0, 0), "labelled_animal": (1, 0), "target_animal": (1, 1)}


def select_few_labelled(
    species: Sequence[str],
    per_species: int | Mapping[str, int],
    seed: int = 0,
    *,
    where: str = "<wscda>",
) -> np.ndarray:
    """Indices of the few labelled animals: ``per_species`` random samples of each species.

    Args:
        species: (N,) species name of each labelled-animal record.
        per_species: how many to keep of every species, or a {species: count} table (species not
            in the table keep none).
        seed: the random seed (the same seed gives the same selection).
        where: the config file named in errors.

    Returns:
        (M,) sorted int64 indices into ``species``.

    Raises:
        ConfigError: a count is negative or larger than what a species has.
    """
    species = list(species)
    names = sorted(set(species))
    counts = dict.fromkeys(names, per_species) if isinstance(per_species, int) else dict(per_species)
    chosen: list[np.ndarray] = []
    for k, name in enumerate(names):
        count = int(counts.get(name, 0))
        members = np.array([i for i, s in enumerate(species) if s == name], dtype=np.int64)
        if count < 0:
            raise ConfigError(where, f"labelled_per_species.{name}", f"must be >= 0, got {count}")
        if count > len(members):
            raise ConfigError(
                where, f"labelled_per_species.{name}", f"asks for {count} {name} but only {len(members)} are labelled"
            )
        rng = np.random.default_rng([seed, k])
        chosen.append(rng.choice(members, size=count, replace=False))
    unknown = sorted(set(counts) - set(names))
    if unknown:
        raise ConfigError(where, "labelled_per_species", f"species {unknown} have no labelled records")
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def normalise_ratio(ratio: Sequence[float], *, where: str = "<wscda>") -> np.ndarray:
    """(3,) float64 ratio (human, labelled animal, target animal) scaled to sum 1; validates it."""
    r = np.asarray(ratio, dtype=np.float64)
    if r.shape != (len(SOURCES),):
        raise ConfigError(where, "mixing.ratio", f"expected {len(SOURCES)} numbers {SOURCES}, got {list(ratio)}")
    if not np.all(np.isfinite(r)) or np.any(r < 0) or r.sum() <= 0:
        raise ConfigError(
            where, "mixing.ratio", f"expected non-negative numbers with a positive sum, got {list(ratio)}"
        )
    return r / r.sum()


def allocate_slots(ratio: Sequence[float], num_slots: int) -> np.ndarray:
    """Source of each of ``num_slots`` consecutive slots by smooth weighted round-robin.

    Returns:
        (num_slots,) int64 source indices; after t slots source s has ``round(t * r_s)`` of them up to
        less than one.
    """
    r = normalise_ratio(ratio)
    credit = np.zeros(len(r))
    out = np.empty(num_slots, dtype=np.int64)
    for t in range(num_slots):
        credit += r
        s = int(np.argmax(credit))  # ties go to the first source
        credit[s] -= 1.0
        out[t] = s
    return out


class _SourceStream:
    """Consecutive seeded permutations of range(size), read one index at a time."""

    def __init__(self, size: int, seed: int, epoch: int, source: int):
        self.size = size
        self.rng = np.random.default_rng([seed, epoch, source])
        self.buffer = np.zeros(0, dtype=np.int64)
        self.pos = 0

    def take(self, n: int) -> np.ndarray:
        parts = []
        while n > 0:
            if self.pos >= len(self.buffer):
                self.buffer = self.rng.permutation(self.size)
                self.pos = 0
            k = min(n, len(self.buffer) - self.pos)
            parts.append(self.buffer[self.pos : self.pos + k])
            self.pos += k
            n -= k
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


class MixedBatchSampler(Sampler[list[int]]):
    """Batches of indices into ``ConcatDataset([humans, labelled_animals, target_animals])``.

    Args:
        sizes: (n_human, n_labelled_animal, n_target_animal), the lengths of the three datasets.
        batch_size: samples per batch.
        ratio: (human, labelled animal, target animal) mixing weights (any positive scale).
        num_batches: batches per epoch.
        seed: the random seed.
        where: the config file named in errors.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        batch_size: int,
        ratio: Sequence[float],
        num_batches: int,
        seed: int = 0,
        *,
        where: str = "<wscda>",
    ):
        if len(sizes) != len(SOURCES):
            raise ConfigError(where, "mixing.sizes", f"expected {len(SOURCES)} dataset sizes, got {list(sizes)}")
        self.sizes = tuple(int(s) for s in sizes)
        self.ratio = normalise_ratio(ratio, where=where)
        for name, size, share in zip(SOURCES, self.sizes, self.ratio, strict=True):
            if share > 0 and size <= 0:
                raise ConfigError(where, "mixing.ratio", f"source {name!r} has a positive ratio but no samples")
        if batch_size < 1:
            raise ConfigError(where, "mixing.batch_size", f"must be >= 1, got {batch_size}")
        if num_batches < 1:
            raise ConfigError(where, "mixing.num_batches", f"must be >= 1, got {num_batches}")
        self.batch_size = int(batch_size)
        self.num_batches = int(num_batches)
        self.seed = int(seed)
        self.epoch = 0
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        slots = allocate_slots(self.ratio, self.num_batches * self.batch_size)
        streams = [_SourceStream(size, self.seed, self.epoch, s) for s, size in enumerate(self.sizes)]
        for b in range(self.num_batches):
            batch_sources = slots[b * self.batch_size : (b + 1) * self.batch_size]
            batch = np.empty(self.batch_size, dtype=np.int64)
            for s, stream in enumerate(streams):
                where_s = np.flatnonzero(batch_sources == s)
                if len(where_s):
                    batch[where_s] = self.offsets[s] + stream.take(len(where_s))
            yield batch.tolist()

    def source_of(self, index: int) -> tuple[str, int]:
        """(source name, index within that source's dataset) of a concatenated index."""
        if not 0 <= index < sum(self.sizes):
            raise IndexError(f"index {index} outside the {sum(self.sizes)} concatenated samples")
        s = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return SOURCES[s], int(index - self.offsets[s])

    def domain_labels(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(N,) y and (N,) z labels (int64) of concatenated indices, from :data:`DOMAIN_LABELS`."""
        pairs = np.array([DOMAIN_LABELS[self.source_of(int(i))[0]] for i in indices], dtype=np.int64)
        pairs = pairs.reshape(-1, 2)
        return pairs[:, 0], pairs[:, 1]
