"""Read CIFAR-10 (or any ImageFolder dataset) from an archive, a folder, or a verified download.

Supported sources:
- the canonical `cifar-10-python.tar.gz` (pickled batches, read with a restricted unpickler);
- an ImageFolder tree or tarball: `[prefix/]train/<class>/<image>` and `[prefix/]test/<class>/<image>`,
  any image format PIL reads, any class names and count, any size (resized), any mode (converted to RGB).
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import tarfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from synthaug.core.errors import DataError
from synthaug.core.io import atomic_path, ensure_free_space, file_sha256, write_json
from synthaug.core.params import FetchParams
from synthaug.core.tracking import run_name, stage_run
from synthaug.data.storage import ImageSet, save_image_set

log = logging.getLogger("synthaug.fetch")

SPLITS = ("train", "test")
LOSSY_FORMATS = ("JPEG", "MPO", "WEBP", "GIF")  # PIL format names; WebP may be lossless but is not told apart
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_FILENAME = "cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"


CIFAR10_ARCHIVE_BYTES = 170_498_071  # cifar-10-python.tar.gz


@dataclass(frozen=True)
class FetchedDataset:
    splits: dict[str, ImageSet]
    source_format: str  # "cifar10-python" | "imagefolder"
    sha256: str
    # How many images needed converting, e.g. {"mode_L": 3, "resized": 5}; kept in meta.json and logged.
    conversions: dict[str, int] = field(default_factory=dict)
    # Images per file format they were decoded from, e.g. {"JPEG": 60000}; empty for the raw python archive.
    encodings: dict[str, int] = field(default_factory=dict)

    @property
    def lossy_images(self) -> int:
        """Images decoded from a lossy format: their compression artefacts alone move FID against clean images."""
        return sum(count for name, count in self.encodings.items() if name in LOSSY_FORMATS)


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a folder's sorted (relative path, file sha256) listing."""
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_of(file)}\n".encode())
        return digest.hexdigest()
    return file_sha256(path)


# --- canonical CIFAR-10 python archive --------------------------------------------------------

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches (dicts of arrays, lists, bytes) and refuses any other object."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        return super().find_class(module, name)


def _load_batch(raw: bytes, member: str) -> dict:
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:
        raise DataError(f"{member}: not a CIFAR-10 python batch ({exc})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{member}: not a CIFAR-10 python batch")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}


def member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    """A regular file's bytes from an open tar archive."""
    handle = tar.extractfile(member)
    if handle is None:
        raise DataError(f"{tar.name!s}:{member.name}: not a regular file")
    return handle.read()


def read_cifar10_python(archive: Path, image_size: int) -> dict[str, ImageSet]:
    batches: dict[str, dict] = {}
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            name = Path(member.name).name
            if member.isfile() and (name.startswith(("data_batch_", "test_batch")) or name == "batches.meta"):
                batches[name] = _load_batch(member_bytes(tar, member), f"{archive}:{member.name}")
    if "batches.meta" not in batches:
        raise DataError(f"{archive}: no batches.meta, not a cifar-10-python archive")
    class_names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in batches["batches.meta"]["label_names"])
    train_names = sorted(n for n in batches if n.startswith("data_batch_"))
    split_members = {"train": train_names, "test": [n for n in ("test_batch",) if n in batches]}
    splits = {}
    for split, names in split_members.items():
        if not names:
            raise DataError(f"{archive}: no {split} batches found")
        data = np.concatenate([np.asarray(batches[n]["data"], dtype=np.uint8) for n in names])
        labels = np.concatenate([np.asarray(batches[n]["labels"], dtype=np.int64) for n in names])
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        splits[split] = ImageSet(resize_images(images, image_size), labels, class_names)
    return splits


# --- ImageFolder tree or tarball --------------------------------------------------------------


def _split_and_class(relative: str) -> tuple[str, str] | None:
    """('train', 'cat') for '[prefix/]train/cat/0001.jpg'; None for files outside that layout."""
    parts = Path(relative).parts
    if len(parts) < 3 or parts[-3] not in SPLITS or Path(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
        return None
    return parts[-3], parts[-2]


def _iter_encoded_images(source: Path) -> Iterator[tuple[str, bytes]]:
    if source.is_dir():
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            yield file.relative_to(source).as_posix(), file.read_bytes()
        return
    with tarfile.open(source, "r:*") as tar:
        for member in tar:  # streamed: a .tar.gz is read once, front to back
            if member.isfile():
                yield member.name, member_bytes(tar, member)


def decode_image(
    encoded: bytes, image_size: int, name: str, conversions: Counter | None = None, encodings: Counter | None = None
) -> np.ndarray:
    """Decode to (size, size, 3) uint8: any mode becomes RGB, any size is resized with antialiasing."""
    conversions = Counter() if conversions is None else conversions
    encodings = Counter() if encodings is None else encodings
    try:
        with Image.open(io.BytesIO(encoded)) as opened:
            encodings[opened.format or "unknown"] += 1
            if opened.mode != "RGB":
                conversions[f"mode_{opened.mode}"] += 1
            image = opened.convert("RGB")
            if image.size != (image_size, image_size):
                conversions["resized"] += 1
                image = image.resize((image_size, image_size), Image.Resampling.BICUBIC, reducing_gap=None)
            return np.asarray(image, dtype=np.uint8)
    except Exception as exc:
        raise DataError(f"{name}: cannot decode image ({type(exc).__name__}: {exc})") from None


def read_image_folder(
    source: Path, image_size: int, conversions: Counter | None = None, encodings: Counter | None = None
) -> dict[str, ImageSet]:
    found: dict[str, list[tuple[str, str, np.ndarray]]] = {split: [] for split in SPLITS}
    for name, encoded in tqdm(_iter_encoded_images(source), desc="decode", unit="img", mininterval=2, disable=None):
        located = _split_and_class(name)
        if located is None:
            continue
        split, class_name = located
        found[split].append(
            (class_name, name, decode_image(encoded, image_size, f"{source}:{name}", conversions, encodings))
        )
    train_classes = sorted({c for c, _, _ in found["train"]})
    if not train_classes:
        raise DataError(f"{source}: no images under train/<class>/ (expected ImageFolder layout)")
    test_classes = sorted({c for c, _, _ in found["test"]})
    missing = sorted(set(train_classes) - set(test_classes))
    if missing:
        raise DataError(f"{source}: class folder(s) missing in test: {', '.join('test/' + c for c in missing)}")
    extra = sorted(set(test_classes) - set(train_classes))
    if extra:
        raise DataError(f"{source}: class folder(s) missing in train: {', '.join('train/' + c for c in extra)}")
    class_index = {c: i for i, c in enumerate(train_classes)}
    splits = {}
    for split, items in found.items():
        items.sort(key=lambda item: (class_index[item[0]], item[1]))  # archive order must not matter
        images = np.stack([pixels for _, _, pixels in items])
        labels = np.array([class_index[c] for c, _, _ in items], dtype=np.int64)
        splits[split] = ImageSet(images, labels, tuple(train_classes))
    return splits


def resize_images(images: np.ndarray, image_size: int) -> np.ndarray:
    if images.shape[1:3] == (image_size, image_size):
        return images
    return np.stack([decode_image_array(img, image_size) for img in images])


def decode_image_array(pixels: np.ndarray, image_size: int) -> np.ndarray:
    image = Image.fromarray(pixels).resize((image_size, image_size), Image.Resampling.BICUBIC, reducing_gap=None)
    return np.asarray(image, dtype=np.uint8)


def _is_cifar10_python(source: Path) -> bool:
    if source.is_dir() or not tarfile.is_tarfile(source):
        return False
    with tarfile.open(source, "r:*") as tar:
        for member in tar:
            if Path(member.name).name == "batches.meta":
                return True
            if _split_and_class(member.name) is not None:
                return False
    return False


def read_archive(source: Path, image_size: int) -> FetchedDataset:
    """Read a local archive or folder in either supported layout."""
    if not source.exists():
        raise DataError(f"{source}: archive not found (fetch.archive)")
    if not source.is_dir() and not tarfile.is_tarfile(source):
        raise DataError(f"{source}: not a folder or a tar archive (fetch.archive)")
    if _is_cifar10_python(source):
        return FetchedDataset(read_cifar10_python(source, image_size), "cifar10-python", sha256_of(source))
    conversions: Counter = Counter()
    encodings: Counter = Counter()
    splits = read_image_folder(source, image_size, conversions, encodings)
    return FetchedDataset(
        splits, "imagefolder", sha256_of(source), dict(sorted(conversions.items())), dict(sorted(encodings.items()))
    )


def download_cifar10(download_dir: Path) -> Path:
    """Download the canonical archive through torchvision, which verifies its md5."""
    from torchvision.datasets.utils import check_integrity, download_url

    archive = download_dir / CIFAR10_FILENAME
    if check_integrity(str(archive), CIFAR10_MD5):
        return archive
    ensure_free_space(download_dir, CIFAR10_ARCHIVE_BYTES, "downloading CIFAR-10")
    try:
        download_url(CIFAR10_URL, str(download_dir), CIFAR10_FILENAME, CIFAR10_MD5)
    except Exception as exc:
        raise DataError(
            f"cannot download CIFAR-10 ({type(exc).__name__}: {exc}); offline? set fetch.archive to a local "
            "archive or ImageFolder for this clone: synthaug local fetch.archive=/abs/path/cifar10-jpg.tar.gz "
            "(or make demo ARCHIVE=...)"
        ) from None
    return archive


def fetch(params: FetchParams, out: Path) -> str:
    """The fetch stage: the dataset decoded into `out` (train.npz, test.npz, meta.json); its summary line."""
    with stage_run(run_name("fetch"), {"fetch": params.model_dump()}) as tracker:
        start = time.perf_counter()
        source = Path(params.archive).expanduser() if params.archive else download_cifar10(Path(params.download_dir))
        dataset = read_archive(source, params.image_size)
        decode_seconds = time.perf_counter() - start
        # The decoded arrays are written once here and once more into the DVC cache.
        ensure_free_space(
            out.parent, 2 * sum(s.images.nbytes + s.labels.nbytes for s in dataset.splits.values()), "fetch"
        )
        with atomic_path(out, directory=True) as tmp:
            for split, images in dataset.splits.items():
                save_image_set(tmp / f"{split}.npz", images)
            write_json(
                tmp / "meta.json",
                {
                    "source": str(source),
                    "source_format": dataset.source_format,
                    "sha256": dataset.sha256,
                    "image_size": params.image_size,
                    "class_names": list(dataset.splits["train"].class_names),
                    "counts": {split: len(images) for split, images in dataset.splits.items()},
                    "conversions": dataset.conversions,
                    "encodings": dataset.encodings,
                    "lossy_images": dataset.lossy_images,
                },
            )
        if dataset.conversions:
            log.info("converted while decoding (images): %s", dataset.conversions)
        counts = {f"{split}_images": len(images) for split, images in dataset.splits.items()}
        tracker.log_metrics({**counts, "decode_seconds": decode_seconds})
    return f"{counts} from {source} ({dataset.source_format}), decoded in {decode_seconds:.1f}s"
