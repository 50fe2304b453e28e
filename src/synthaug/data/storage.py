"""One split of a dataset in one compact file: uint8 NHWC images, int64 labels, class names."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthaug.core.errors import MissingInput
from synthaug.core.io import atomic_path


@dataclass(frozen=True)
class ImageSet:
    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int64
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(f"images must be (N, H, W, 3) uint8, got {self.images.shape} {self.images.dtype}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"labels shape {self.labels.shape} does not match {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    def batch(self, indices: np.ndarray) -> np.ndarray:
        """uint8 (B, H, W, 3): the images at `indices`, in their order."""
        return self.images[indices]

    def subset(self, indices: np.ndarray) -> ImageSet:
        return ImageSet(self.images[indices], self.labels[indices], self.class_names)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    def digest(self) -> dict[str, str]:
        """sha256 of the pixels and of the labels: part of a resume fingerprint (other data, other result)."""
        return {
            key: hashlib.sha256(values.data).hexdigest()
            for key, values in (("images", self.images), ("labels", self.labels))
        }


def save_image_set(path: str | Path, data: ImageSet) -> None:
    # Uncompressed: loads at disk speed, and DVC's cache deduplicates it anyway.
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, images=data.images, labels=data.labels, class_names=np.array(data.class_names))


def load_image_set(path: str | Path) -> ImageSet:
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"{path}: dataset split not found (run the fetch stage first)")
    with np.load(path, allow_pickle=False) as archive:
        return ImageSet(
            images=archive["images"],
            labels=archive["labels"].astype(np.int64),
            class_names=tuple(str(name) for name in archive["class_names"]),
        )


def save_index_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **kwds as allow_pickle


def load_index_arrays(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"{path}: split indices not found (run the imbalance stage first)")
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name].astype(np.int64) for name in archive.files}
