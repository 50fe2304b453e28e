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


def amount_exp_show() -> list[dict]:
    """Two amounts of generated images, three seeds each; the classifier trains 2 s per seed."""

    def scores(synthetic: list[float]) -> dict[str, float]:
        return {
            **{f"vit-baseline/seed{k}": 0.30 for k in range(3)},
            **{f"vit-synthetic_gan/seed{k}": score for k, score in enumerate(synthetic)},
        }

    shown = [revision("half", 0.5, scores([0.40, 0.42, 0.47])), revision("whole", 1.0, scores([0.50, 0.51, 0.55]))]
    for record in shown:
        for path, content in record["data"]["metrics"].items():
            if path.startswith("metrics/train/"):
                content["data"]["seconds"] = 2.0
    return shown


def test_an_amount_sweep_gives_images_per_class_interval_and_compute_per_point(tmp_path):
    from scipy import stats

    from synthaug.report.sweep_runs import GeneratorAmount
    from synthaug.report.sweeps import adds_images, amount_figure, amount_markdown

    amounts = {("half", "gan"): GeneratorAmount(225.0, 30.0), ("whole", "gan"): GeneratorAmount(450.0, 40.0)}
    rows = sweep_rows(sweep_points(amount_exp_show(), "train.augment_p"), "train.augment_p", "macro_f1", amounts)
    table = {(r["value"], r["variant"]): r for r in rows}
    half = table[(0.5, "synthetic_gan")]
    low, high = stats.t.interval(0.95, 2, loc=0.43, scale=stats.sem([0.40, 0.42, 0.47]))
    assert (half["low"], half["high"]) == (pytest.approx(low, abs=1e-6), pytest.approx(high, abs=1e-6))
    assert (half["generated_per_class"], half["compute_seconds"]) == (225.0, 32.0)  # classifier 2 s + one run 30 s
    assert table[(1.0, "synthetic_gan")]["compute_seconds"] == 42.0
    baseline = table[(0.5, "baseline")]  # adds no generated images: no amount, its own seconds
    assert math.isnan(baseline["generated_per_class"]) and baseline["compute_seconds"] == 2.0
    # the table keeps the new columns; one written before them reads NaN there
    path = tmp_path / "train.augment_p.csv"
    path.write_text(rows_to_csv(rows))
    loaded = read_sweep_csv(path)
    assert [r["generated_per_class"] for r in loaded if r["variant"] == "synthetic_gan"] == [225.0, 450.0]
    old = tmp_path / "old.csv"
    old.write_text("\n".join(",".join(line.split(",")[:12]) for line in path.read_text().splitlines()) + "\n")
    assert all(math.isnan(r["low"]) and math.isnan(r["generated_per_class"]) for r in read_sweep_csv(old))
    assert adds_images(loaded) and not adds_images(read_sweep_csv(old))
    markdown = amount_markdown(loaded)
    cell = f"225: 0.4300 [{low:.4f}, {high:.4f}], 32 s"
    assert f"| vit/synthetic_gan | {cell} | 450: 0.5200 [" in markdown and "vit/baseline" not in markdown
    figure = amount_figure(loaded)
    axes = figure.axes[0]
    (errorbar,) = [bars for bars in axes.containers if bars.get_label() == "vit/synthetic_gan"]
    points = errorbar.lines[0]
    assert points.get_xdata().tolist() == [225.0, 450.0] and points.get_ydata().tolist() == pytest.approx([0.43, 0.52])
    assert any(line.get_label() == "vit/baseline" and line.get_ydata()[0] == 0.30 for line in axes.lines)
    assert sorted(t.get_text() for t in axes.texts) == ["32 s", "42 s"]


def test_generator_amounts_come_from_each_experiments_cached_records(tmp_path):
    import os
    import subprocess
    import sys

    from synthaug.report.sweep_runs import GeneratorAmount, generator_amounts

    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        **{
            f"GIT_{who}_{what}": value
            for who in ("AUTHOR", "COMMITTER")
            for what, value in (("NAME", "t"), ("EMAIL", "t@t"))
        },
    }

    def commit_run(total: int) -> str:
        """One synthesize run whose records say `total` generated images, committed; its git rev."""
        synthesis = {
            "synthetic_total": total,
            "synthetic_per_class": {f"c{k}": total // 10 for k in range(10)},
            "seconds": 12.0,
            "runs": {"seed0": {}, "seed1": {}, "seed2": {}},
        }
        training = {"seconds": 300.0, "runs": {"seed0": {}, "seed1": {}, "seed2": {}}}
        (tmp_path / "make.py").write_text(
            "import json, pathlib\n"
            f"for path, record in (('synthetic', {synthesis!r}), ('generators', {training!r})):\n"
            "    pathlib.Path(f'metrics/{path}').mkdir(parents=True, exist_ok=True)\n"
            "    pathlib.Path(f'metrics/{path}/gan.json').write_text(json.dumps(record))\n"
        )
        for command in (["dvc", "repro", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", f"run {total}"]):
            subprocess.run(command, cwd=tmp_path, env=env, check=True, capture_output=True)
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()

    (tmp_path / "dvc.yaml").write_text(
        f"stages:\n  synthesize:\n    cmd: {sys.executable} make.py\n    deps: [make.py]\n"
        "    outs: [metrics/synthetic/gan.json, metrics/generators/gan.json]\n"
    )
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=tmp_path, env=env, check=True, capture_output=True)
    revs = {"half": commit_run(4500), "double": commit_run(9000)}  # the workspace now holds the second run's
    found = generator_amounts(tmp_path, revs, {"gan", "ddpm"})
    assert found == {  # each at its own rev, from the cache; ddpm has no records: skipped
        ("half", "gan"): GeneratorAmount(450.0, 300.0 / 3 + 12.0 / 3),
        ("double", "gan"): GeneratorAmount(900.0, 300.0 / 3 + 12.0 / 3),
    }
