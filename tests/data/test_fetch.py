from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthaug.pipeline import fetch
from synthaug.pipeline.fetch import DataError, read_archive, sha256_of

from ..conftest import make_image_folder, png_bytes, tar_folder


def test_image_folder_tree(image_folder):
    dataset = read_archive(image_folder, image_size=8)
    train, test = dataset.splits["train"], dataset.splits["test"]
    assert dataset.source_format == "imagefolder"
    assert train.class_names == ("cat", "dog", "frog")
    assert train.images.shape == (36, 8, 8, 3) and train.images.dtype == np.uint8
    assert train.class_counts().tolist() == [12, 12, 12]
    assert test.class_counts().tolist() == [4, 4, 4]
    first = np.asarray(Image.open(image_folder / "train" / "cat" / "0000.png"))
    np.testing.assert_array_equal(train.images[0], first)


def test_tarball_with_prefix_matches_tree_and_records_sha(image_folder, tmp_path):
    archive = tar_folder(image_folder, tmp_path / "set.tar.gz", prefix="cifar10/")
    from_tar = read_archive(archive, image_size=8)
    from_tree = read_archive(image_folder, image_size=8)
    np.testing.assert_array_equal(from_tar.splits["train"].images, from_tree.splits["train"].images)
    np.testing.assert_array_equal(from_tar.splits["test"].labels, from_tree.splits["test"].labels)
    assert from_tar.sha256 == sha256_of(archive) and len(from_tar.sha256) == 64


def test_resizes_and_converts_modes(tmp_path):
    root = make_image_folder(tmp_path / "images", classes=("a", "b"), train_per_class=2, test_per_class=1)
    Image.new("L", (20, 12), color=128).save(root / "train" / "a" / "gray.png")
    Image.new("RGBA", (5, 5), color=(10, 20, 30, 0)).save(root / "train" / "b" / "rgba.png")
    dataset = read_archive(root, image_size=16)
    train = dataset.splits["train"]
    assert train.images.shape == (6, 16, 16, 3)
    gray = train.images[2]  # sorted by (class, name): a/0000, a/0001, a/gray
    assert np.all(gray == 128)
    assert dataset.conversions == {"mode_L": 1, "mode_RGBA": 1, "resized": 8}  # the 6 fixture images are 8 px


def test_corrupt_image_names_the_file(tmp_path):
    root = make_image_folder(tmp_path / "images", classes=("a", "b"), train_per_class=1, test_per_class=1)
    (root / "train" / "b" / "broken.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=r"train/b/broken\.jpg: cannot decode image"):
        read_archive(root, image_size=8)


def test_missing_test_class_is_named(tmp_path):
    root = make_image_folder(tmp_path / "images", classes=("a", "b"), train_per_class=1, test_per_class=1)
    for file in (root / "test" / "b").iterdir():
        file.unlink()
    (root / "test" / "b").rmdir()
    with pytest.raises(DataError, match=r"missing in test: test/b"):
        read_archive(root, image_size=8)


def test_empty_class_folder_is_named(tmp_path):
    root = make_image_folder(tmp_path / "images", classes=("a", "b"), train_per_class=1, test_per_class=1)
    for file in (root / "train" / "b").iterdir():
        file.unlink()  # the folder stays, empty
    with pytest.raises(DataError, match=r"class folder\(s\) missing in train: train/b"):
        read_archive(root, image_size=8)


def test_not_an_archive(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_archive(tmp_path / "nope.tar.gz", image_size=8)
    (tmp_path / "x.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match="not a folder or a tar archive"):
        read_archive(tmp_path / "x.zip", image_size=8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images under train"):
        read_archive(tmp_path / "empty", image_size=8)


def _add_bytes(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def make_cifar_python(path: Path, per_batch: int = 4) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(1)
    all_data, all_labels = [], []
    with tarfile.open(path, "w:gz") as tar:
        _add_bytes(
            tar, "cifar-10-batches-py/batches.meta", pickle.dumps({b"label_names": [b"plane", b"car"]}, protocol=2)
        )
        for name in ("data_batch_1", "data_batch_2", "test_batch"):
            data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            labels = [i % 2 for i in range(per_batch)]
            _add_bytes(tar, f"cifar-10-batches-py/{name}", pickle.dumps({b"data": data, b"labels": labels}, protocol=2))
            all_data.append(data)
            all_labels += labels
    return np.concatenate(all_data), all_labels


def test_canonical_cifar_python_archive(tmp_path):
    data, labels = make_cifar_python(tmp_path / "cifar-10-python.tar.gz")
    dataset = read_archive(tmp_path / "cifar-10-python.tar.gz", image_size=32)
    train = dataset.splits["train"]
    assert dataset.source_format == "cifar10-python"
    assert train.class_names == ("plane", "car")
    assert train.images.shape == (8, 32, 32, 3)
    # channel-first rows -> HWC: pixel (0, 0) of image 0 is bytes 0, 1024, 2048 of its row
    assert train.images[0, 0, 0].tolist() == [data[0, 0], data[0, 1024], data[0, 2048]]
    assert dataset.splits["test"].labels.tolist() == labels[8:]


def test_cifar_batches_cannot_run_code(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    with tarfile.open(tmp_path / "evil.tar.gz", "w:gz") as tar:
        _add_bytes(tar, "cifar-10-batches-py/batches.meta", pickle.dumps(Exploit(), protocol=2))
    with pytest.raises(DataError, match=r"refusing to load (__builtin__|builtins)\.print"):
        read_archive(tmp_path / "evil.tar.gz", image_size=32)


def test_offline_download_says_which_param_to_set(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(tv_utils, "download_url", offline)
    with pytest.raises(DataError, match=r"cannot download CIFAR-10 .*set fetch\.archive"):
        fetch.download_cifar10(tmp_path)


def test_png_fixture_roundtrip():
    pixels = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    decoded = fetch.decode_image(png_bytes(pixels), 4, "x.png")
    np.testing.assert_array_equal(decoded, pixels)
