"""Subsets of a dataset by image-name range, written as COCO keypoints JSON (e.g. a train/test split).

Readers that have no split of their own (DeepLabCut ``CollectedData.csv``: ``labeled-data/img01.png``
... ``img90.png``) are split by the number in the image file name: :func:`records_in_range` keeps the
records whose image stem is ``<prefix><n>`` with ``first <= n <= last`` (``img01``–``img60``), and
:func:`write_subset` writes them with :func:`animalpose.data.coco_writer.write_coco`, so the subset is
a file any reader and config can point at (``data.train: OUT/train.json``) without copying images.

A record without a box means "the whole image is the box" (:class:`~animalpose.data.dataset.TopDownDataset`);
``write_coco`` would write the box around the labelled keypoints instead, which the COCO reader then
uses as the crop. :func:`write_subset` therefore writes the whole-image box for such records, so the
subset crops exactly like the original dataset.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from animalpose.data.coco_writer import write_coco
from animalpose.data.images import probe_image_size
from animalpose.data.records import PoseRecord
from animalpose.errors import DataError
from animalpose.keypoints import KeypointSchema

_STEM_RE = re.compile(r"^(.*?)(\d+)$")


def stem_number(image: str, where: str = "<records>") -> tuple[str, int]:
    """(prefix, number) of an image file stem: ``.../img07.png`` -> ("img", 7).

    Raises DataError naming ``where`` when the stem does not end in digits.
    """
    m = _STEM_RE.match(Path(image).stem)
    if m is None:
        raise DataError(where, "image", f"{image}: file name does not end in a number")
    return m.group(1), int(m.group(2))


def records_in_range(records: Sequence[PoseRecord], first: str, last: str,
                     where: str = "<records>") -> list[PoseRecord]:
    """The records whose image stem has ``first``'s prefix and a number in [first's, last's], in order.

    Args:
        records: any records (e.g. ``read_dataset(folder).records``).
        first, last: image stems bounding the range, inclusive (``"img01"``, ``"img60"``); same prefix.

    Raises:
        DataError naming ``where`` for a bad range, or when no record falls in it.
    """
    (p0, lo), (p1, hi) = stem_number(first, where), stem_number(last, where)
    if p0 != p1 or lo > hi:
        raise DataError(where, "range", f"bad image range {first!r}..{last!r} (same prefix, first <= last)")
    out = []
    for r in records:
        m = _STEM_RE.match(Path(r.image).stem)
        if m is not None and m.group(1) == p0 and lo <= int(m.group(2)) <= hi:
            out.append(r)
    if not out:
        raise DataError(where, "range", f"no image in {first!r}..{last!r}")
    return out


def write_subset(records: Sequence[PoseRecord], path: str | Path, schema: str | KeypointSchema, first: str,
                 last: str, *, where: str = "<records>") -> tuple[Path, int]:
    """Write the records of images ``first``..``last`` to ``path`` (COCO JSON); returns (path, count).

    Records without a box get the whole-image box ``(0, 0, width, height)`` (see the module doc). The
    file is written atomically and reads back with :func:`animalpose.data.readers.read_dataset`.
    """
    chosen = records_in_range(records, first, last, where)
    boxed = []
    for r in chosen:
        if r.bbox is None:
            w, h = r.image_size if r.image_size is not None else probe_image_size(r.image)
            r = replace(r, bbox=(0.0, 0.0, float(w), float(h)), image_size=(int(w), int(h)))
        boxed.append(r)
    info = {"subset_of": where, "range": [first, last]}
    return write_coco(boxed, path, schema, info=info), len(boxed)
