from __future__ import annotations

import numpy as np
import pytest

from synthaug.core.io import fingerprint
from synthaug.synthetic.plan import generation_counts, plan_items
from synthaug.synthetic.shards import generate_shards, load_synthetic, metadata_rows

NAMES = ("cat", "dog", "frog")
LABELS = np.repeat(np.arange(3), 10)
TRAIN = np.concatenate([np.arange(0, 2), np.arange(10, 15), np.arange(20, 30)])  # 2, 5, 10 per class


def test_counts_reach_the_largest_class_or_a_target():
    counts = np.array([2, 5, 10])
    assert generation_counts(counts, None, 1.0).tolist() == [8, 5, 0]
    assert generation_counts(counts, None, 0.5).tolist() == [3, 0, 0]
    assert generation_counts(counts, 12, 1.0).tolist() == [10, 7, 2]


def test_plan_is_seeded_and_points_at_the_class_training_images():
    items = plan_items(TRAIN, LABELS, NAMES, np.array([8, 5, 0]), ["a photo of a {name}", "a {name}"], seed=3)
    assert [sum(i.class_index == c for i in items) for c in range(3)] == [8, 5, 0]
    for item in items:
        assert item.source_index in TRAIN and LABELS[item.source_index] == item.class_index
        assert item.prompt in (f"a photo of a {item.class_name}", f"a {item.class_name}")
    cat_sources = [i.source_index for i in items if i.class_index == 0]
    assert sorted(set(cat_sources)) == [0, 1]  # both real cats are used, cycling
    assert items == plan_items(TRAIN, LABELS, NAMES, np.array([8, 5, 0]), ["a photo of a {name}", "a {name}"], seed=3)
    other = plan_items(TRAIN, LABELS, NAMES, np.array([8, 5, 0]), ["a photo of a {name}", "a {name}"], seed=4)
    assert [i.seed for i in other] != [i.seed for i in items]
    assert len({i.seed for i in items}) == len(items)


def fake_backend(calls: list, fail_after: int | None = None):
    def generate(items):
        if fail_after is not None and len(calls) >= fail_after:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-run
        calls.append(len(items))
        return np.stack([np.full((4, 4, 3), item.seed % 251, np.uint8) for item in items])

    return generate


def test_interrupted_generation_resumes_with_identical_result(tmp_path):
    items = plan_items(TRAIN, LABELS, NAMES, np.array([8, 5, 0]), ["{name}"], seed=0)
    calls: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        generate_shards(items, 4, tmp_path / "work", "digest", fake_backend(calls, fail_after=2))
    assert calls == [4, 4] and sorted(p.name for p in (tmp_path / "work").glob("shard-*")) == [
        "shard-00000.npz",
        "shard-00001.npz",
    ]
    resumed_calls: list[int] = []
    assert generate_shards(items, 4, tmp_path / "work", "digest", fake_backend(resumed_calls)) == 5
    assert resumed_calls == [4, 1]  # only the missing shards
    fresh_calls: list[int] = []
    generate_shards(items, 4, tmp_path / "fresh", "digest", fake_backend(fresh_calls))
    for name in ("shard-00000.npz", "shard-00001.npz", "shard-00002.npz", "shard-00003.npz"):
        assert (tmp_path / "work" / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes()


def test_changed_inputs_discard_old_shards(tmp_path):
    items = plan_items(TRAIN, LABELS, NAMES, np.array([3, 0, 0]), ["{name}"], seed=0)
    generate_shards(items, 2, tmp_path, fingerprint({"seed": 0}), fake_backend([]))
    calls: list[int] = []
    generate_shards(items, 2, tmp_path, fingerprint({"seed": 1}), fake_backend(calls))
    assert calls == [2, 1]


def test_metadata_and_loading(tmp_path):
    items = plan_items(TRAIN, LABELS, NAMES, np.array([3, 2, 0]), ["{name}"], seed=0)
    generate_shards(items, 2, tmp_path, "d", fake_backend([]))
    rows = metadata_rows(items, 2, "fake")
    assert [r["shard"] for r in rows] == ["shard-00000.npz"] * 2 + ["shard-00001.npz"] * 2 + ["shard-00002.npz"]
    assert rows[0]["generator"] == "fake" and rows[0]["class_name"] == "cat"
    with pytest.raises(FileNotFoundError, match="run the synthesize stage first"):
        load_synthetic(tmp_path, NAMES)
    (tmp_path / "metadata.csv").write_text("x\n")
    loaded = load_synthetic(tmp_path, NAMES)
    assert loaded.images.shape == (5, 4, 4, 3) and loaded.labels.tolist() == [0, 0, 0, 1, 1]


def test_metadata_csv_and_preview_grids():
    from synthaug.data.storage import ImageSet
    from synthaug.synthetic.shards import metadata_csv, preview_grids

    items = plan_items(TRAIN, LABELS, NAMES, np.array([3, 0, 0]), ["a {name}"], seed=0)
    lines = metadata_csv(items, 2, "g").splitlines()
    assert lines[0] == "shard,class_index,class_name,index,seed,source_index,prompt,generator"
    assert len(lines) == 4 and lines[3].startswith("shard-00001.npz,0,cat,2,") and lines[3].endswith(",a cat,g")
    real = ImageSet(np.zeros((6, 4, 4, 3), np.uint8), np.array([0, 0, 1, 1, 2, 2]), NAMES)
    synthetic = ImageSet(np.full((3, 4, 4, 3), 200, np.uint8), np.zeros(3, np.int64), NAMES)
    grids = preview_grids(real, synthetic, per_class=2)
    assert list(grids) == ["cat"]  # only classes that received synthetic images
    # rows: 2 real, then 2 + 1 synthetic; 4 px images, 2 px gaps, scaled x2
    assert grids["cat"].shape == (2 * (3 * 4 + 2 * 2), 2 * (2 * 4 + 2), 3)
    assert grids["cat"][0, 0].tolist() == [0, 0, 0] and grids["cat"][2 * 6, 0].tolist() == [200, 200, 200]
