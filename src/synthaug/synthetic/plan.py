"""What to generate: per-class counts to reach a target, and one seeded, self-describing item per image."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from synthaug.core.seeding import derive_seed


@dataclass(frozen=True)
class SynthItem:
    class_index: int
    class_name: str
    index: int  # position among this class's synthetic images
    seed: int  # derived from (global seed, class, index): the image can be regenerated alone
    source_index: int  # row of the fetched train split whose image conditions this one
    prompt: str

    def to_dict(self) -> dict:
        return asdict(self)


def generation_counts(class_counts: np.ndarray, target_count: int | None, target_ratio: float) -> np.ndarray:
    """Images to generate per class so each reaches round(target * ratio); target defaults to the largest class."""
    target = int(round((class_counts.max() if target_count is None else target_count) * target_ratio))
    return np.maximum(target - class_counts, 0).astype(np.int64)


def evaluation_counts(test_counts: np.ndarray, per_class: int | None) -> np.ndarray:
    """FID/KID set: the test set's class distribution, each class capped at `per_class` (None = no cap)."""
    return test_counts.astype(np.int64) if per_class is None else np.minimum(test_counts, per_class).astype(np.int64)


def plan_items(
    train_indices: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...],
    counts: np.ndarray,
    prompt_templates: list[str],
    seed: int,
) -> list[SynthItem]:
    """Items class by class; sources cycle through a seeded shuffle of that class's training images."""
    items = []
    for cls, name in enumerate(class_names):
        if counts[cls] == 0:
            continue
        members = np.sort(train_indices[labels[train_indices] == cls])
        if len(members) == 0:
            raise ValueError(f"class '{name}' has no training image to condition on")
        sources = np.random.default_rng(derive_seed(seed, cls, "sources")).permutation(members)
        for index in range(int(counts[cls])):
            item_seed = derive_seed(seed, cls, index)
            template = prompt_templates[item_seed % len(prompt_templates)]
            items.append(
                SynthItem(cls, name, index, item_seed, int(sources[index % len(sources)]), template.format(name=name))
            )
    return items
