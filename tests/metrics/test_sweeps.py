"""Sweep collection from `dvc exp show --json` (shape as DVC 3 prints it) and its report rendering."""

from __future__ import annotations

import math

import pytest

from synthaug.report.sweep_runs import (
    SweepError,
    chosen_values,
    read_sweep_csv,
    rows_to_csv,
    sweep_matrix,
    sweep_points,
    sweep_rows,
)
from synthaug.report.sweeps import sweep_heatmap_figure, sweep_markdown


def revision(
    name: str, p_aug: float, scores: dict[str, float], preset: str = "demo", val: dict[str, float] | None = None
) -> dict:
    """An experiment's exp-show record: test macro-F1 per entry/seed in `scores`, and its best validation
    macro-F1 in `val` (default: the test score + 0.05)."""
    val = {entry: score + 0.05 for entry, score in scores.items()} if val is None else val
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
                **{
                    f"metrics/train/{entry}.json": {"data": {"best_val_macro_f1": score, "seconds": 1.0}}
                    for entry, score in val.items()
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
    assert table[(0.0, "baseline")]["val_mean"] == pytest.approx(0.27) and table[(0.0, "baseline")]["seeds"] == 2
    assert table[(0.0, "baseline")]["val_std"] == pytest.approx(0.028284, abs=1e-6)
    assert table[(1.0, "baseline")]["seeds"] == 1 and table[(1.0, "baseline")]["runs"] == 2  # two runs of seed 0
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
    assert "| train.augment_p → (val macro-F1 / test macro_f1) | 0 | 0.5 | 1 | chosen on validation |" in markdown
    assert "| vit/synthetic_gan | 0.5500 / 0.5000 | 0.4500 / 0.4000 | n/a | 0 |" in markdown
    assert "| vit/baseline | 0.2700 ± 0.0283 / 0.2200 ± 0.0283 (2 seeds) | 0.3500 / 0.3000 |" in markdown
    figure = sweep_heatmap_figure(loaded)
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert sorted(texts) == sorted(f"val {v + 0.05:.3f}\ntest {v:.3f}" for v in (0.22, 0.30, 0.12, 0.50, 0.40))
    assert len(figure.axes[0].patches) == 2  # one chosen value boxed per classifier/variant


def test_the_chosen_value_follows_validation_not_test():
    # p0 has the best test score for baseline, p1 the best validation score: p1 is chosen
    shown = [
        revision("main", 0.5, {"vit-baseline/seed0": 0.30}, val={"vit-baseline/seed0": 0.30}),
        revision("p0", 0.0, {"vit-baseline/seed0": 0.60}, val={"vit-baseline/seed0": 0.20}),
        revision("p1", 1.0, {"vit-baseline/seed0": 0.10}, val={"vit-baseline/seed0": 0.40}),
    ]
    rows = sweep_rows(sweep_points(shown, "train.augment_p"), "train.augment_p", "macro_f1")
    assert chosen_values(rows) == {"vit/baseline": 1.0}
    assert sweep_markdown(rows).rstrip().endswith("| 1 |")
    # an entry trained before its summary recorded validation cannot be chosen, and says so
    old = revision("p2", 2.0, {"vit-old/seed0": 0.9}, val={})
    rows = sweep_rows(sweep_points([old], "train.augment_p"), "train.augment_p", "macro_f1")
    assert math.isnan(rows[0]["val_mean"]) and chosen_values(rows) == {}
    assert "| vit/old | n/a / 0.9000 | no validation scores |" in sweep_markdown(rows)


def test_nothing_to_collect_names_the_key():
    with pytest.raises(SweepError, match="no experiment sets train.lr"):
        sweep_rows(sweep_points(exp_show_json(), "train.lr"), "train.lr", "macro_f1")


def test_a_table_without_sweep_columns_is_rejected(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(SweepError, match="not a sweep table"):
        read_sweep_csv(path)


def test_a_sweep_of_another_metric_gets_its_own_table():
    from synthaug.report.sweep_runs import sweep_file_name

    assert sweep_file_name("synthesize.target_ratio") == "synthesize.target_ratio.csv"
    assert sweep_file_name("synthesize.target_ratio", "recall_few") == "synthesize.target_ratio.recall_few.csv"
    points = sweep_points(exp_show_json(), "train.augment_p", metric="accuracy")
    assert {p.score for p in points} == {1.0}  # the other metric's values, not macro-F1's
