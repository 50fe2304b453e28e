"""`synthaug generate`: a class's images from an exported generator, the same images as the synthesize shards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from synthaug.synthetic.shards import load_synthetic

from ..conftest import HANG_GUARD_S, stage_env
from .test_sharded_synthesize import CLASSES, project, synthesize  # noqa: F401 (project is a fixture)


def generate(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "synthaug.tools.cli",
            "generate",
            "--generator",
            "gan",
            "--model",
            "gan/seed1",
            "--data",
            "data",
        ]
        + ["--splits", "splits.npz", *args],
        cwd=folder,
        env=stage_env(folder),
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )


def test_generated_images_are_the_shards_images_for_the_same_seed(project):  # noqa: F811
    synthesize(project, "run", [sys.executable])
    shards = load_synthetic(project / "run/synthetic/seed1", CLASSES)  # the run of --model gan/seed1
    cat_shards = shards.images[shards.labels == 0]  # 9 cat images were planned (3 real, 12 to reach)
    result = generate(project, "--class", "cat", "--count", "4", "--out", "cats")
    assert result.returncode == 0, result.stderr
    files = sorted((project / "cats").glob("*.png"))
    assert [f.name.split("_seed")[0] for f in files] == [f"cat_{k:05d}" for k in range(4)]
    generated = np.stack([np.asarray(Image.open(f)) for f in files])
    np.testing.assert_array_equal(generated, cat_shards[:4])
    assert "4/4" in result.stderr  # the progress bar
    # Another seed gives other images; a grid is one PNG of 2 x 2 tiles (scale 2, gap 2 between 8 px tiles)
    other = generate(project, "--class", "cat", "--count", "4", "--seed", "7", "--out", "grid.png")
    assert other.returncode == 0, other.stderr
    grid = np.asarray(Image.open(project / "grid.png"))
    assert grid.shape == (2 * (2 * 8 + 2), 2 * (2 * 8 + 2), 3)
    assert not np.array_equal(grid[:16, :16], cat_shards[0].repeat(2, 0).repeat(2, 1))


def test_generate_errors_are_one_line(project):  # noqa: F811
    unknown = generate(project, "--class", "horse", "--out", "x")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == [  # the one line, no progress bar before it
        "synthaug generate: error: --class 'horse': not a class of this dataset (one of cat, dog, frog)"
    ]
    missing = generate(project, "--class", "cat", "--model", "absent", "--out", "x")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "synthaug generate: error: absent/generator.json: generator not found (run the train_generator stage first)"
    ]
