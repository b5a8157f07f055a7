"""The rows either FERPlus layout accepts, turned into manifest columns (majority label, flags, votes, box)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from fercurate.ingest.ferplus.reader import DATASET
from fercurate.schema import BBOX_TYPE, CANONICAL_LABELS
from fercurate.votes import N_VOTES, majority_labels, vote_flags


@dataclass
class Rows:
    """Accepted rows of either layout, before the shared checks of ``fercurate.ingest.result.finish``."""

    sample_id: list[str] = field(default_factory=list)
    image_path: list[str] = field(default_factory=list)
    split: list[str] = field(default_factory=list)
    source_split: list[str] = field(default_factory=list)
    source_label: list[str] = field(default_factory=list)
    votes: list[list[int]] = field(default_factory=list)
    box: list[tuple[float, float, float, float] | None] = field(default_factory=list)
    extra_flags: list[list[str]] = field(default_factory=list)
    source_file: list[str] = field(default_factory=list)
    line: list[int] = field(default_factory=list)
    name: list[str] = field(default_factory=list)

    def add(self, *, folder: str, name: str, split: str, source_split: str, source_label: str,
            votes: list[int], box: tuple[float, float, float, float] | None, source_file: str, line: int) -> None:
        """Accept the image ``folder/name`` with its votes (and face box), remembering where it was listed."""
        rel = f"{folder}/{name}"
        self.sample_id.append(f"{DATASET}/{rel}")
        self.image_path.append(rel)
        self.split.append(split)
        self.source_split.append(source_split)
        self.source_label.append(source_label)
        self.votes.append(votes)
        self.box.append(box)
        self.extra_flags.append([])
        self.source_file.append(source_file)
        self.line.append(line)
        self.name.append(name)

    def __len__(self) -> int:
        return len(self.sample_id)

    def columns(self) -> dict[str, Any]:
        """The manifest columns of the accepted rows: majority labels and their flags, all votes, boxes."""
        n = len(self)
        votes = np.asarray(self.votes, dtype=np.int16).reshape(n, N_VOTES)
        label_id, top_index, tie = majority_labels(votes)
        flags = vote_flags(votes, top_index, tie)
        for f, extra in zip(flags, self.extra_flags):
            f.extend(extra)
        offsets = pa.array(np.arange(0, (n + 1) * N_VOTES, N_VOTES, dtype=np.int32))
        label_votes = pa.ListArray.from_arrays(offsets, pa.array(votes.reshape(-1)))
        has_box = np.array([b is not None for b in self.box], dtype=bool)
        coords = np.array([b if b is not None else (0, 0, 0, 0) for b in self.box], dtype=np.float32).reshape(n, 4)
        bbox = pa.StructArray.from_arrays(
            [pa.array(coords[:, k]) for k in range(4)],
            fields=list(BBOX_TYPE),
            mask=pa.array(~has_box),
        )
        names = np.array(CANONICAL_LABELS + (None,), dtype=object)
        return {
            "sample_id": self.sample_id,
            "dataset": [DATASET] * n,
            "split": self.split,
            "source_split": self.source_split,
            "image_path": self.image_path,
            "label": names[label_id].tolist(),
            "label_id": label_id,
            "source_label": self.source_label,
            "label_votes": label_votes,
            "bbox": bbox,
            "flags": pa.array([f or None for f in flags], type=pa.list_(pa.string())),
        }
