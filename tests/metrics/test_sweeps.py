"""Sweep collection from `dvc exp show --json` (shape as DVC 3 prints it) and its report rendering."""

from __future__ import annotations

import math

import pytest

from synthaug.metrics.report import sweep_heatmap_figure, sweep_markdown
from synthaug.metrics.sweeps import (
    SweepError,
    read_sweep_csv,
    rows_to_csv,
    sweep_matrix,
    sweep_points,
    sweep_rows,
)


def revision(name: str, p_aug: float, scores: dict[str, float], preset: str = "demo") -> dict:
    return {
        "rev": f"{abs(hash(name)):040x}"[:40],
        "name": name,
        "error": None,
        "data": {
            "params": {"params.yaml": {"data": {"train": {"augment_p": p_aug}, "experiment": {"preset": preset}}}},
            "metrics": {
                **{
                    f"metrics/eval/{entry}.json": {"data": {"macro_f1": score, "accuracy": 1.0}}
                    for entry, score in scores.items()
                },
                "metrics/fid/gan.json": {"data": {"macro_f1": 99.0}},  # not an evaluate entry: ignored
            },
        },
    }


def exp_show_json() -> list[dict]:
    head = revision("main", 0.5, {"vit-baseline/seed0": 0.30, "vit-synthetic_gan/seed0": 0.40})
    workspace = {**revision("workspace", 0.5, {"vit-baseline/seed0": 0.99}), "rev": "workspace", "name": None}
    experiments = [
        revision("p0", 0.0, {"vit-baseline/seed0": 0.20, "vit-baseline/seed1": 0.24, "vit-synthetic_gan/seed0": 0.50}),
        revision("p1", 1.0, {"vit-baseline/seed0": 0.10}),
        revision("p1-again", 1.0, {"vit-baseline/seed0": 0.14}),
        revision("other-preset", 1.0, {"vit-baseline/seed0": 0.90}, preset="full"),
        {**revision("failed", 0.25, {"vit-baseline/seed0": 0.5}), "error": {"msg": "failed"}},
    ]
    head["experiments"] = [{"revs": [e], "name": e["name"]} for e in experiments]
    return [workspace, head]


def test_points_skip_the_workspace_failed_runs_and_other_files():
    points = sweep_points(exp_show_json(), "train.augment_p")
    assert {p.experiment for p in points} == {"main", "p0", "p1", "p1-again", "other-preset"}
    assert {(p.classifier, p.variant, p.seed) for p in points if p.experiment == "p0"} == {
        ("vit", "baseline", 0),
        ("vit", "baseline", 1),
        ("vit", "synthetic_gan", 0),
    }
    filtered = sweep_points(exp_show_json(), "train.augment_p", where={"experiment.preset": "demo"})
    assert "other-preset" not in {p.experiment for p in filtered}


def test_rows_average_seeds_and_runs_per_value_and_variant():
    rows = sweep_rows(
        sweep_points(exp_show_json(), "train.augment_p", where={"experiment.preset": "demo"}),
        "train.augment_p",
        "macro_f1",
    )
    table = {(r["value"], r["variant"]): r for r in rows}
    assert [r["value"] for r in rows] == sorted(r["value"] for r in rows)
    assert table[(0.0, "baseline")]["mean"] == pytest.approx(0.22) and table[(0.0, "baseline")]["runs"] == 2
    assert table[(0.0, "baseline")]["std"] == pytest.approx(0.028284, abs=1e-6)
    assert (
        table[(1.0, "baseline")]["mean"] == pytest.approx(0.12)
        and table[(1.0, "baseline")]["experiments"] == "p1 p1-again"
    )
    assert table[(0.5, "synthetic_gan")]["mean"] == pytest.approx(0.40)
    assert (1.0, "synthetic_gan") not in table


def test_csv_round_trip_matrix_and_report_rendering(tmp_path):
    rows = sweep_rows(
        sweep_points(exp_show_json(), "train.augment_p", where={"experiment.preset": "demo"}),
        "train.augment_p",
        "macro_f1",
    )
    path = tmp_path / "train.augment_p.csv"
    path.write_text(rows_to_csv(rows))
    loaded = read_sweep_csv(path)
    assert [(r["value"], r["variant"], r["mean"], r["runs"]) for r in loaded] == [
        (r["value"], r["variant"], r["mean"], r["runs"]) for r in rows
    ]
    labels, values, matrix = sweep_matrix(loaded)
    assert labels == ["vit/baseline", "vit/synthetic_gan"] and values == [0.0, 0.5, 1.0]
    assert matrix[0].tolist() == pytest.approx([0.22, 0.30, 0.12]) and math.isnan(matrix[1, 2])
    markdown = sweep_markdown(loaded)
    assert "| train.augment_p → | 0 | 0.5 | 1 |" in markdown
    assert "| vit/synthetic_gan | 0.5000 | 0.4000 | n/a |" in markdown
    figure = sweep_heatmap_figure(loaded)
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert sorted(texts) == sorted(["0.220", "0.300", "0.120", "0.500", "0.400"])


def test_nothing_to_collect_names_the_key():
    with pytest.raises(SweepError, match="no experiment sets train.lr"):
        sweep_rows(sweep_points(exp_show_json(), "train.lr"), "train.lr", "macro_f1")


def test_a_table_without_sweep_columns_is_rejected(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(SweepError, match="not a sweep table"):
        read_sweep_csv(path)
