"""Shared fixtures: tiny datasets made on the spot, and the project's real params shrunk for tests."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synthaug.core.param_rules import load_params, parse_section
from synthaug.core.params import TrainParams

ROOT = Path(__file__).resolve().parents[1]

# Kills only a hung subprocess: about five times the longest expected run (the e2e module's `dvc repro`, about
# 380 s on a 2-core machine), so a slower or busier machine still passes and a hang still ends the suite.
HANG_GUARD_S = 1800


def threads_per_worker() -> int:
    """The cores shared out among pytest-xdist workers: two workers on two cores run one torch thread each,
    instead of each starting one thread per core and four busy threads fighting over two cores."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, (os.cpu_count() or 1) // workers)


def pytest_configure(config: pytest.Config) -> None:
    threads = threads_per_worker()
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for every subprocess this worker starts
    torch.set_num_threads(threads)


# The two slowest modules come first, and `make test` hands files out in collection order (--dist loadfile
# --no-loadscope-reorder): each starts on its own pytest-xdist worker, and the other files fill in around them.
SLOWEST_FIRST = ("tests/e2e/test_pipeline.py", "tests/e2e/test_cluster.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    order = {path: index for index, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: order.get(item.nodeid.split("::")[0], len(order)))  # stable: the rest keep their order


@contextmanager
def server_folder(prefix: str) -> Iterator[Path]:
    """A short /tmp folder for a server the tests start, removed after: PostgreSQL runs as `postgres` and cannot
    enter pytest's root-only tmp_path, and munge's socket path must stay under the AF_UNIX length limit."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def stage_env(project: Path) -> dict[str, str]:
    """The environment a stage subprocess runs with in a test project: this checkout's library, one thread per
    process (several ranks share the cores), and the project's own MLflow store."""
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{project}/mlflow.db",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT / "src"),
    }


def finished_stage_runs(store: Path) -> list[str]:
    """Names of the finished stage runs in an MLflow sqlite store, the pipeline executions' parent runs left out."""
    import sqlite3

    with sqlite3.connect(store) as db:
        rows = db.execute(
            "select name from runs r where status = 'FINISHED' and not exists "
            "(select 1 from tags t where t.run_uuid = r.run_uuid and t.key = 'synthaug.role')"
        ).fetchall()
    return sorted(name for (name,) in rows)


def make_image_folder(
    root: Path,
    classes: tuple[str, ...] = ("cat", "dog", "frog"),
    train_per_class: int = 12,
    test_per_class: int = 4,
    size: int = 8,
    seed: int = 0,
) -> Path:
    """An ImageFolder tree whose classes differ in mean colour, so a classifier can learn them."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for index, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                base = np.zeros((size, size, 3)) + 40
                base[..., index % 3] = 200
                pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


def tar_folder(folder: Path, archive: Path, prefix: str = "") -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            tar.add(file, arcname=f"{prefix}{file.relative_to(folder).as_posix()}")
    return archive


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "images")


@pytest.fixture(scope="session")
def project_params() -> dict:
    return load_params(ROOT / "params.yaml")


@pytest.fixture
def tiny_train_params(project_params: dict) -> TrainParams:
    """The demo's train section, shrunk: 8 px input, a 2-layer ViT, no augmentation or dropout."""
    raw = dict(project_params["train"])
    raw.update(epochs=2, batch_size=8, image_size=8, augment_p=0.0, eval_batch_size=16, lr=3e-3)
    raw["vit"] = dict(raw["vit"], patch_size=4, hidden_size=32, num_hidden_layers=2, intermediate_size=64)
    raw["cnn"] = dict(raw["cnn"], channels=[8, 16], dropout=0.0)
    raw["timm"] = dict(raw["timm"], image_size=8)
    return parse_section("train", raw, TrainParams)
