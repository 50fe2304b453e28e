"""A training set of real and generated images stored at different sizes, read as one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from synthaug.data.pixels import resize_uint8
from synthaug.data.storage import ImageSet


@dataclass(frozen=True)
class MixedSizeImageSet:
    """Image sets of one class list but different image sizes (32 px real images beside 224 px generated ones),
    read as one: a batch comes out at the largest size, the smaller images resized per batch (torch's antialiased
    bilinear, as the classifiers' input resize), so no set is ever held resized in memory."""

    parts: tuple[ImageSet, ...]

    def __post_init__(self) -> None:
        names = {part.class_names for part in self.parts}
        if len(names) != 1:
            raise ValueError(f"class names differ: {' vs '.join(map(str, names))}")

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.parts[0].class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> int:
        return max(part.image_size for part in self.parts)

    @cached_property
    def labels(self) -> np.ndarray:
        return np.concatenate([part.labels for part in self.parts])

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    def batch(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices)
        out = np.empty((len(indices), self.image_size, self.image_size, 3), np.uint8)
        start = 0
        for part in self.parts:
            mine = (indices >= start) & (indices < start + len(part))
            if mine.any():
                out[mine] = resize_uint8(part.images[indices[mine] - start], self.image_size)
            start += len(part)
        return out

    def digest(self) -> dict[str, str]:
        digests = [part.digest() for part in self.parts]
        return {key: hashlib.sha256("".join(d[key] for d in digests).encode()).hexdigest() for key in digests[0]}


TrainingImages = ImageSet | MixedSizeImageSet


def concat_image_sets(first: ImageSet, second: ImageSet) -> TrainingImages:
    """Real + synthetic: both must share class names; images of different sizes stay apart (MixedSizeImageSet)."""
    if first.class_names != second.class_names:
        raise ValueError(f"class names differ: {first.class_names} vs {second.class_names}")
    if len(second) == 0:
        return first
    if first.images.shape[1:] != second.images.shape[1:]:
        return MixedSizeImageSet((first, second))
    return ImageSet(
        np.concatenate([first.images, second.images]), np.concatenate([first.labels, second.labels]), first.class_names
    )
