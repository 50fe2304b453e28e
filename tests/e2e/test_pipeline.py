"""The real DAG: `dvc repro` on a copy of the project with a tiny ImageFolder and a tiny preset."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from synthaug.core.generator_runs import generator_run_seed
from synthaug.core.param_rules import validate_all

from ..conftest import finished_stage_runs
from .project import run, tiny_project

pytestmark = pytest.mark.e2e

GENERATORS = ["sdxl_turbo", "ddpm", "gan"]
SEEDS = [0, 1]  # two seeds: every train entry trains both in one process, and the report shows intervals
RUNS = [f"seed{seed}" for seed in SEEDS]  # experiment.generator_runs per_seed: one generator run per seed
ENTRIES = [
    "vit-baseline",
    "vit-full",
    "vit-distilled",
    *(f"vit-synthetic_{g}" for g in GENERATORS),
    *(f"vit-synthetic_only_{g}" for g in GENERATORS),
    *(f"vit-real_equal_{g}" for g in GENERATORS),
    *(f"vit-synthetic_{g}+logit_adjusted" for g in GENERATORS),
    *(f"vit-finetuned_{g}" for g in GENERATORS),
]


@pytest.fixture(scope="module")
def pipeline_repo(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    repo, env = tiny_project(
        tmp_path_factory.mktemp("e2e"),
        GENERATORS,
        ["baseline", "full"],
        SEEDS,
        ("vit",),
        composed=("logit_adjusted",),
        careful=("finetuned",),
    )
    run(["git", "init", "-q"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "--allow-empty", "-qm", "tiny project"], repo, env)
    run(["dvc", "repro"], repo, env)
    return repo, env


def stop_queue_workers(repo: Path) -> None:
    """A DVC queue worker can stay alive after its queue is empty and stopped: leave no process behind."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if b"queue-worker" in (proc / "cmdline").read_bytes() and (proc / "cwd").resolve() == repo.resolve():
                os.kill(int(proc.name), signal.SIGTERM)
        except OSError:
            continue  # gone already, or not ours to read


def entry_stage(entry: str) -> str:
    if "+" in entry:
        return "train_composed"
    if "-finetuned_" in entry or "-weighted_" in entry:
        return "train_careful"
    if "synthetic" in entry or "real_equal" in entry:
        return "train_synthetic"
    return "train_distilled" if entry.endswith("-distilled") else "train_classifier"


def joined(repo: Path, relative: str) -> dict:
    """A metrics file and its detail (metrics/detail/<same path>), as one record."""
    return json.loads((repo / "metrics" / relative).read_text()) | json.loads(
        (repo / "metrics/detail" / relative).read_text()
    )


def read_metrics(repo: Path, entry: str, seed: int = 0) -> dict:
    return joined(repo, f"eval/{entry}/seed{seed}.json")


def mean_over_seeds(repo: Path, entry: str, metric: str) -> float:
    return float(np.mean([read_metrics(repo, entry, seed)[metric] for seed in SEEDS]))


def test_tiny_params_are_valid(pipeline_repo):
    repo, _ = pipeline_repo
    sections = validate_all(yaml.safe_load((repo / "params.yaml").read_text()))
    assert sections["experiment"].preset == "tiny"


def test_repro_writes_every_output(pipeline_repo):
    repo, _ = pipeline_repo
    meta = json.loads((repo / "data/cifar10/meta.json").read_text())
    assert meta["class_names"] == ["cat", "dog", "frog"] and meta["counts"] == {"train": 60, "test": 18}
    assert len(meta["sha256"]) == 64
    counts = json.loads((repo / "metrics/class_counts.json").read_text())
    assert counts["counts"]["val"] == {"cat": 4, "dog": 4, "frog": 4}
    # 20 per class, 4 held out for val, then linear keep fractions 0.3 .. 1.0 of the 16 left
    expected = [int(round(16 * f)) for f in np.linspace(0.3, 1.0, 3)]
    assert list(counts["counts"]["train"].values()) == expected == [5, 10, 16]
    for entry in ENTRIES:
        for seed in SEEDS:
            report = read_metrics(repo, entry, seed)
            assert 0.0 <= report["accuracy"] <= 1.0 and 0.0 <= report["macro_f1"] <= 1.0
            assert report["num_samples"] == 18 and set(report["per_class"]) == {"cat", "dog", "frog"}
            predictions = (repo / f"metrics/predictions/{entry}/seed{seed}.csv").read_text().splitlines()
            assert predictions[0] == "actual,predicted" and len(predictions) == 19
            assert (repo / f"metrics/confusion/{entry}/seed{seed}.png").read_bytes()[:4] == b"\x89PNG"
            assert (repo / f"models/classifiers/{entry}/seed{seed}/model.safetensors").is_file()
            history = (repo / f"metrics/curves/{entry}/seed{seed}.csv").read_text().splitlines()
            assert len(history) == 3  # header + 2 epochs
            summary = joined(repo, f"train/{entry}/seed{seed}.json")
            assert summary["device"] == "cpu" and summary["seconds"] > 0
        # the seeds differ in what they vary (initialization, batch order, augmentation)
        weights = [(repo / f"models/classifiers/{entry}/seed{seed}/model.safetensors").read_bytes() for seed in SEEDS]
        assert weights[0] != weights[1]
    assert not list(repo.rglob(".*.tmp-*")), "temporary files left behind"
    assert not list(repo.rglob(".*.partial")), "generation work folder left behind"


def test_synthetic_images_rebalance_the_minority_classes(pipeline_repo):
    repo, _ = pipeline_repo
    summary = json.loads((repo / "metrics/synthetic/sdxl_turbo.json").read_text())
    assert summary["real_per_class"] == {"cat": 5, "dog": 10, "frog": 16}
    assert summary["synthetic_per_class"] == {"cat": 11, "dog": 6, "frog": 0}  # each class reaches 16
    shards = sorted((repo / "data/synthetic/sdxl_turbo/seed0").glob("shard-*.npz"))
    assert [s.name for s in shards] == [f"shard-{i:05d}.npz" for i in range(5)]  # 17 images, 4 per shard
    with np.load(shards[0]) as first:
        # stored at synthesize.sdxl_turbo.image_size, twice the dataset's 8 px: the synthetic entries train on both
        assert first["images"].shape == (4, 16, 16, 3) and first["images"].dtype == np.uint8
    rows = (repo / "data/synthetic/sdxl_turbo/seed0/metadata.csv").read_text().splitlines()
    assert rows[0] == "shard,class_index,class_name,index,seed,source_index,prompt,generator"
    assert len(rows) == 18 and rows[1].startswith("shard-00000.npz,0,cat,0,") and rows[1].endswith(",sdxl_turbo")
    for folder in RUNS:
        assert sorted(p.name for p in (repo / "metrics/synthetic/sdxl_turbo" / folder).iterdir()) == [
            "cat.png",
            "dog.png",
        ]
    # SDXL-Turbo trains nothing: each seed's run differs by its sampling seed only
    seeds = [json.loads(line.split(",")[4]) for line in rows[1:3]]
    other = (repo / "data/synthetic/sdxl_turbo/seed1/metadata.csv").read_text().splitlines()
    assert [json.loads(line.split(",")[4]) for line in other[1:3]] != seeds
    assert [r["seed"] for r in summary["runs"].values()] == [generator_run_seed(0, folder) for folder in RUNS]
    trained = joined(repo, "train/vit-synthetic_sdxl_turbo/seed0.json")
    assert trained["generator_run"] == "seed0"
    assert joined(repo, "train/vit-synthetic_sdxl_turbo/seed1.json")["generator_run"] == "seed1"
    kept = trained["synthetic_images"]
    assert set(trained["synthetic_kept_fraction"]) == {"cat", "dog"}
    assert 0 <= kept <= 17 and trained["train_images"] == 31 + kept  # the real imbalanced set plus what was kept


def test_generators_are_trained_and_sampled(pipeline_repo):
    repo, _ = pipeline_repo
    for folder in RUNS:
        assert json.loads((repo / f"models/generators/sdxl_turbo/{folder}/generator.json").read_text()) == {
            "generator": "sdxl_turbo",
            "trained": False,
        }
        assert (repo / f"models/generators/ddpm/{folder}/unet/config.json").is_file()
        assert (repo / f"models/generators/gan/{folder}/generator.safetensors").is_file()
    # each seed trains its own generator: independent draws, different weights
    gan_weights = [(repo / f"models/generators/gan/{folder}/generator.safetensors").read_bytes() for folder in RUNS]
    assert gan_weights[0] != gan_weights[1]
    for generator in ("ddpm", "gan"):
        summary = json.loads((repo / f"metrics/generators/{generator}.json").read_text())
        assert summary["steps"] == 6 and summary["train_images"] == 31 and list(summary["runs"]) == RUNS
        assert summary["seconds"] == pytest.approx(sum(r["seconds"] for r in summary["runs"].values()), abs=0.02)
        for folder in RUNS:
            info = json.loads((repo / f"models/generators/{generator}/{folder}/generator.json").read_text())
            assert info == {
                "generator": generator,
                "trained": True,
                "class_names": ["cat", "dog", "frog"],
                "image_size": 8,
                "steps": 6,
            }
            assert summary["runs"][folder]["resumed_from_step"] == 0
            assert summary["runs"][folder]["seed"] == generator_run_seed(0, folder)
            curve = (repo / f"metrics/generators/{generator}/{folder}/loss.csv").read_text().splitlines()
            assert curve[0].startswith("step,") and [row.split(",")[0] for row in curve[1:]] == ["2", "4", "6"]
            assert (repo / f"metrics/generators/{generator}/{folder}/samples.png").read_bytes()[:4] == b"\x89PNG"
            rows = (repo / f"data/synthetic_eval/{generator}/{folder}/metadata.csv").read_text().splitlines()[1:]
            assert [row.split(",")[2] for row in rows] == ["cat"] * 4 + ["dog"] * 4 + ["frog"] * 4
        counts = json.loads((repo / f"metrics/synthetic/{generator}.json").read_text())
        assert counts["synthetic_per_class"] == {"cat": 11, "dog": 6, "frog": 0}
        assert counts["eval_per_class"] == {"cat": 4, "dog": 4, "frog": 4}  # 6 test images per class, capped at 4


def test_fid_uses_classifier_features_offline(pipeline_repo):
    repo, _ = pipeline_repo
    for generator in GENERATORS:
        record = joined(repo, f"fid/{generator}.json")
        assert list(record["runs"]) == RUNS
        assert record["fid_classifier_features"] == pytest.approx(
            np.mean([r["fid_classifier_features"] for r in record["runs"].values()])
        )
        scores = record["runs"]["seed0"]
        assert scores["features"] == "classifier:vit-full-seed0" and "fid" not in scores
        assert scores["inception_unavailable"].startswith("fid.inception_url: not set")
        assert scores["images"] == scores["real_images"] == 12 and scores["fid_classifier_features"] >= 0.0
        # the tiny ViT's 32 head inputs from 12 images per side: rank-deficient, and said so
        assert (scores["fid_dims"], scores["fid_images"], scores["fid_full_rank"]) == (32, 12, False)
        assert scores["real_images_lossy"] is False and scores["real_image_encodings"] == {"PNG": 78}
        assert np.isfinite(scores["kid_mean_classifier_features"]) and scores["kid_std_classifier_features"] >= 0.0
        assert 0.0 <= scores["precision_classifier_features"] <= 1.0
        assert 0.0 <= scores["real_classifier_accuracy_on_generated"] <= 1.0
        assert set(scores["per_class"]) == {"cat", "dog", "frog"}
        assert all(
            entry["images"] == 4 and "kid_mean_classifier_features" in entry and "fid_classifier_features" not in entry
            for entry in scores["per_class"].values()
        )


def test_cas_classifier_trains_on_generated_images_alone(pipeline_repo):
    repo, _ = pipeline_repo
    for generator in GENERATORS:
        trained = joined(repo, f"train/vit-synthetic_only_{generator}/seed0.json")
        assert trained["train_images"] == trained["synthetic_images"] == 12  # the evaluation set, 4 per class, no real
        assert "synthetic_kept_fraction" not in trained  # CAS measures the generator unfiltered
        assert read_metrics(repo, f"vit-synthetic_only_{generator}")["num_samples"] == 18  # the real test set
        # CAS's reference: the same classifier on as many real images per class, none generated
        matched = joined(repo, f"train/vit-real_equal_{generator}/seed0.json")
        assert matched["train_images"] == matched["matched_synthetic_images"] == 12
        assert matched["generator_run"] == "seed0" and "synthetic_images" not in matched
        assert read_metrics(repo, f"vit-real_equal_{generator}")["num_samples"] == 18
        # the composed remedy trains on the synthetic variant's images, with the loss fix
        composed = joined(repo, f"train/vit-synthetic_{generator}+logit_adjusted/seed0.json")
        synthetic = joined(repo, f"train/vit-synthetic_{generator}/seed0.json")
        assert composed["train_images"] == synthetic["train_images"] > 31  # the imbalanced set and generated images
        assert composed["synthetic_kept_fraction"] == synthetic["synthetic_kept_fraction"]


def test_the_distilled_entry_learns_from_the_same_seed_of_its_teacher(pipeline_repo):
    repo, env = pipeline_repo
    for seed in SEEDS:
        summary = joined(repo, f"train/vit-distilled/seed{seed}.json")
        assert summary["teacher"] == "vit-baseline" and summary["train_images"] == 31  # the imbalanced set
    stage = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train_distilled@vit"]
    assert "models/classifiers/vit-baseline" in {dep["path"] for dep in stage["deps"]}
    assert stage["params"]["params.yaml"]["train.distill"]["teacher"] == "baseline"
    # Another alpha reruns the distilled entry alone (and the report, which reads all of params.yaml); the
    # teacher's changes reach it through its checkpoints.
    params = repo / "params.yaml"
    original = params.read_text()
    edited = yaml.safe_load(original)
    edited["train"]["distill"]["alpha"] = 0.25
    params.write_text(yaml.safe_dump(edited, sort_keys=False))
    try:
        changed = set(json.loads(run(["dvc", "status", "--json"], repo, env).stdout))
    finally:
        params.write_text(original)
    assert changed == {"train_distilled@vit", "report"}


def report_inputs(repo: Path):
    """What the report stage reads, loaded the way it loads it."""
    from synthaug.core.param_rules import parse_section
    from synthaug.core.params import ExperimentParams, TrainParams
    from synthaug.report.inputs import load_report_inputs

    params = yaml.safe_load((repo / "params.yaml").read_text())
    experiment = parse_section("experiment", params["experiment"], ExperimentParams)
    train = parse_section("train", params["train"], TrainParams)
    return load_report_inputs(repo / "metrics", experiment, train, "", {})


def test_report_records_equal_the_stage_outputs(pipeline_repo):
    """The typed summaries the report is made from against the eval records, read independently."""
    from synthaug.report.summaries import comparison_rows, unusable_variants, variant_compute, verdict_rows

    repo, _ = pipeline_repo
    inputs = report_inputs(repo)
    rows = {f"{r['classifier']}-{r['variant']}": r for r in comparison_rows(inputs.results, inputs.minority)}
    assert "vit-synthetic_only_gan" not in rows and "vit-real_equal_gan" not in rows  # CAS entries: generator readings
    for entry in ("vit-baseline", "vit-distilled", "vit-synthetic_gan", "vit-synthetic_gan+logit_adjusted"):
        for metric in ("accuracy", "macro_f1", "ece"):
            assert rows[entry][metric][0] == pytest.approx(mean_over_seeds(repo, entry, metric), abs=1e-9)
        assert rows[entry]["seeds"] == len(SEEDS)
    minority = inputs.minority
    recall = np.mean(
        [np.mean([read_metrics(repo, "vit-baseline", s)["per_class"][c]["recall"] for c in minority]) for s in SEEDS]
    )
    assert rows["vit-baseline"]["minority_recall"][0] == pytest.approx(recall)
    verdicts = {f"{r['classifier']}-{r['variant']}": r["comparisons"] for r in verdict_rows(inputs.results)}
    gains = [
        read_metrics(repo, "vit-synthetic_gan", s)["macro_f1"] - read_metrics(repo, "vit-baseline", s)["macro_f1"]
        for s in SEEDS
    ]
    assert verdicts["vit-synthetic_gan"]["baseline"].difference.mean == pytest.approx(np.mean(gains))
    # a generator is flagged when most images one of its runs adds are of classes the fid stage found not usable
    for generator, runs in inputs.unusable.items():
        record = joined(repo, f"fid/{generator}.json")
        added = json.loads((repo / f"metrics/synthetic/{generator}.json").read_text())["synthetic_per_class"]
        for flagged in runs:
            unusable = [c for c in record["runs"][flagged.run]["unusable_classes"] if added[c] > 0]
            assert list(flagged.classes) == unusable
            assert flagged.share == pytest.approx(sum(added[c] for c in unusable) / sum(added.values()))
    flagged = unusable_variants(inputs.unusable, [])
    assert flagged <= {
        f"{prefix}_{g}" for prefix in ("synthetic", "synthetic_only", "weighted", "finetuned") for g in GENERATORS
    }
    assert all(f"finetuned_{g}" in flagged for g in inputs.unusable)  # a careful use is flagged with its images
    for generator in GENERATORS:  # one reading per generator run, from the fid stage's record
        record = joined(repo, f"fid/{generator}.json")
        for folder in RUNS:
            reading = inputs.scores[f"{generator} ({folder})"]
            assert reading.fid == pytest.approx(record["runs"][folder]["fid_classifier_features"])
    # class groups by imbalanced training images (cat 5, dog 10, frog 16): the eval files carry their scores
    assert inputs.groups == {"many": ["frog"], "medium": ["dog"], "few": ["cat"]}
    headline = json.loads((repo / "metrics/eval/vit-baseline/seed0.json").read_text())
    for group, names in inputs.groups.items():
        per_class = read_metrics(repo, "vit-baseline")["per_class"]
        assert headline[f"f1_{group}"] == pytest.approx(np.mean([per_class[c]["f1"] for c in names]), abs=1e-6)
        assert headline[f"recall_{group}"] == pytest.approx(np.mean([per_class[c]["recall"] for c in names]), abs=1e-6)
    # compute: the classifier's loop (mean over seeds) plus one generator run's training and synthesis
    cost = variant_compute(inputs.results, inputs.trainings, inputs.syntheses)[("vit", "synthetic_gan")]
    seconds = np.mean([joined(repo, f"train/vit-synthetic_gan/seed{s}.json")["seconds"] for s in SEEDS])
    assert cost.classifier_seconds == pytest.approx(seconds)
    assert cost.generator_seconds > 0


def test_report_opens_with_the_answer_and_renders(pipeline_repo, tmp_path):
    from ..browser import png_is_not_blank, render

    repo, env = pipeline_repo
    markdown = (repo / "metrics/report.md").read_text()
    commit = run(["git", "rev-parse", "HEAD"], repo, env).stdout.strip()
    headings = re.findall(r"^## (.+)$", markdown, flags=re.MULTILINE)
    assert headings[0].startswith("Answer") and headings[-2:] == ["How to read this report", "Provenance"]
    assert markdown.count(f"commit `{commit[:10]}`") == 1  # said once, under the title
    answer = markdown.split("## ")[1]
    assert "\nPreset tiny. Classifier vit, 2 seed(s).\n" in answer  # what ran, before the table
    for variant in ("full", "distilled", "synthetic_gan", "synthetic_gan+logit_adjusted", "finetuned_gan"):
        assert re.search(rf"^\| vit \| {re.escape(variant)}[ |(]", answer, flags=re.MULTILINE), variant
    assert sorted(p.name for p in (repo / "metrics/report").iterdir()) == [
        "class_counts.png",
        "confusion.png",
        "curves.png",
        "recall_vs_count.png",
        "reliability.png",
    ]
    page = (repo / "metrics/report.html").read_text()
    # the report's 5 figures; per generator (its first run) one preview per topped-up class (2), trained ones + loss
    # and samples
    assert page.count("data:image/png;base64,") == 5 + 2 + 2 * (2 + 2)
    assert "<details><summary>params.yaml" in page and "train_generator:" in page  # the params, folded
    dom = render((repo / "metrics/report.html").as_uri(), tmp_path / "report.png")
    assert "synthetic_sdxl_turbo" in dom and "<table>" in dom
    assert png_is_not_blank(tmp_path / "report.png")


def test_dvc_plots_show_renders_every_plot(pipeline_repo, tmp_path):
    repo, env = pipeline_repo
    rendered = json.loads(run(["dvc", "plots", "show", "--json"], repo, env).stdout)["data"]
    expected = {
        "metrics/class_counts.csv": "vega",
        "metrics/generators/ddpm/seed0/loss.csv": "vega",
        "metrics/generators/gan/seed1/loss.csv": "vega",
        "metrics/generators/gan/seed0/samples.png": "image",
        "metrics/report/confusion.png": "image",
        f"metrics/predictions/{ENTRIES[0]}/seed1.csv": "vega",
        f"metrics/curves/{ENTRIES[-1]}/seed0.csv": "vega",
        "metrics/synthetic/gan/seed1/cat.png": "image",
    }
    assert {plot: [r["type"] for r in rendered[plot]] for plot in expected} == {p: [t] for p, t in expected.items()}
    run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], repo, env)
    page = (tmp_path / "plots" / "index.html").read_text()
    assert "metrics_class_counts_csv" in page and "metrics_generators_ddpm_seed0_loss_csv" in page


def test_second_repro_is_a_noop(pipeline_repo):
    repo, env = pipeline_repo
    result = run(["dvc", "repro"], repo, env)
    assert "Running stage" not in result.stdout
    assert "up to date" in result.stdout


def test_editing_a_covered_module_makes_its_stages_changed(pipeline_repo):
    """dvc.yaml covers each stage's import closure, so a library edit is a changed dependency, not a stale cache."""
    repo, env = pipeline_repo
    # the synthetic set's plan: read by the generator, synthesize, fid and train stages, by file or by folder
    module = repo / "src/synthaug/synthetic/plan.py"
    original = module.read_bytes()
    module.write_bytes(original + b"\n# edited\n")
    try:
        changed = set(json.loads(run(["dvc", "status", "--json"], repo, env).stdout))
    finally:
        module.write_bytes(original)
    assert {
        "train_classifier@vit-baseline",
        "train_generator@gan",
        "synthesize@ddpm",
        "fid@gan",
        "train_synthetic@vit-synthetic_only-gan",
    } <= changed
    assert not changed & {"fetch", "imbalance", "report", "profile_model@vit"}  # none of them imports it
    assert json.loads(run(["dvc", "status", "--json"], repo, env).stdout) == {}


def test_forced_rerun_is_byte_identical(pipeline_repo):
    repo, env = pipeline_repo
    entry = ENTRIES[0]
    outputs = [
        *(f"models/classifiers/{entry}/seed{seed}/model.safetensors" for seed in SEEDS),
        *(f"metrics/curves/{entry}/seed{seed}.csv" for seed in SEEDS),
        *(f"metrics/eval/{entry}/seed{seed}.json" for seed in SEEDS),
        *(f"metrics/predictions/{entry}/seed{seed}.csv" for seed in SEEDS),
    ]
    # SDXL sampling is deterministic per seed in tests/generators; here the DDPM sampler and GAN training cross
    # processes
    outputs += sorted(str(p.relative_to(repo)) for p in (repo / "data/synthetic/ddpm").rglob("*") if p.is_file())
    outputs += [f"models/generators/gan/{folder}/generator.safetensors" for folder in RUNS]
    before = {path: (repo / path).read_bytes() for path in outputs}
    stages = ["train_generator@gan", "synthesize@ddpm", "train_classifier@vit-baseline"]
    result = run(["dvc", "repro", "--force", "--single-item", *stages], repo, env)
    assert re.findall(r"Running stage '([^']+)'", result.stdout) == stages
    assert {path: (repo / path).read_bytes() for path in outputs} == before


def test_runs_are_in_the_mlflow_store(pipeline_repo):
    repo, _ = pipeline_repo
    names = sorted(set(finished_stage_runs(repo / "mlflow.db")))
    with sqlite3.connect(repo / "mlflow.db") as db:
        # one `dvc repro`, one parent run: every stage run of the execution is nested under it
        (pipeline,) = db.execute(
            "select r.run_uuid from runs r join tags t on t.run_uuid = r.run_uuid where t.key = 'synthaug.role'"
        ).fetchall()
        parents = {
            row[0]
            for row in db.execute(
                "select t.value from tags t join runs r on r.run_uuid = t.run_uuid "
                "where t.key = 'mlflow.parentRunId' and r.name not like 'trial %'"
            )
        }
        metrics = dict(
            db.execute(
                "select r.name, m.value from metrics m join runs r on r.run_uuid = m.run_uuid where m.key = "
                "'test_macro_f1'"
            ).fetchall()
        )
    assert names == sorted(
        [
            "fetch",
            "imbalance",
            "report",
            "profile_model/vit",
            *(f"fid/{g}" for g in GENERATORS),
            *(
                f"{stage}/{g}/{folder}"  # one MLflow run per generator run
                for stage in ("train_generator", "synthesize")
                for g in GENERATORS
                for folder in RUNS
                if (stage, g) != ("train_generator", "sdxl_turbo")
            ),  # pretrained: nothing to train or log
            *(f"{entry_stage(entry)}/{entry}/seed{seed}" for entry in ENTRIES for seed in SEEDS),
        ]
    )
    assert parents == set(pipeline)
    for seed in SEEDS:
        assert metrics[f"train_classifier/vit-baseline/seed{seed}"] == pytest.approx(
            read_metrics(repo, "vit-baseline", seed)["macro_f1"]
        )
    # the pipeline's own run, the first row of `mlflow ui`, carries the headline the report stage logged
    with sqlite3.connect(repo / "mlflow.db") as db:
        (headline,) = db.execute(
            "select value from metrics where run_uuid = ? and key = 'test_macro_f1.vit-baseline'", pipeline
        ).fetchone()
        verdicts = dict(db.execute("select key, value from tags where run_uuid = ? and key like 'verdict.%'", pipeline))
        artifacts = db.execute("select artifact_uri from runs where run_uuid = ?", pipeline).fetchone()[0]
    assert headline == pytest.approx(np.mean([read_metrics(repo, "vit-baseline", s)["macro_f1"] for s in SEEDS]))
    assert verdicts["verdict.vit-full.vs_baseline"].startswith("full: ")
    assert (Path(artifacts.removeprefix("file://")) / "report.html").is_file()


def test_a_queued_sweep_runs_in_parallel_and_is_collected_into_the_report(pipeline_repo, request):
    """A range sweep queued with -S, run by dvc queue start -j 2: both finish, both log every stage run to the one
    sqlite store without lock errors, and `synthaug sweep` plus `dvc repro` put the grid in the report."""
    import time

    repo, env = pipeline_repo
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "--allow-empty", "-qm", "results before the queue"], repo, env)
    result = run(["dvc", "exp", "run", "--queue", "-S", "profile_model.batch_size=range(16,25,8)"], repo, env)
    queued = result.stdout + result.stderr
    assert re.findall(r"\['profile_model.batch_size=(\d+)'\]", queued) == ["16", "24"]
    names = re.findall(r"Queued experiment '([^']+)'", queued)
    assert len(names) == 2
    request.addfinalizer(lambda: stop_queue_workers(repo))
    # the workers it starts outlive it and hold its stdout open: capture to a file, not a pipe
    with open(repo.parent / "queue-start.log", "w") as log:
        started = subprocess.run(
            ["dvc", "queue", "start", "-j", "2"], cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=120
        )
    assert started.returncode == 0, (repo.parent / "queue-start.log").read_text()
    deadline, status = time.time() + 480, ""
    while time.time() < deadline:
        status = run(["dvc", "queue", "status"], repo, env).stdout
        states = {
            name: line.split()[-1] for line in status.splitlines() for name in names if f" {name} " in f" {line} "
        }
        assert "Failed" not in states.values(), status + run(["dvc", "queue", "logs", names[0]], repo, env).stdout
        if states == {name: "Success" for name in names}:
            break
        time.sleep(3)
    else:
        pytest.fail(f"queue did not finish in time:\n{status}")
    run(["dvc", "queue", "stop"], repo, env)
    logs = "".join(run(["dvc", "queue", "logs", name], repo, env).stdout for name in names)
    assert logs.count("Running stage 'profile_model@vit'") == 2
    assert "database is locked" not in logs and "MLflow" not in logs  # no store warning in either experiment
    with sqlite3.connect(repo / "mlflow.db") as db:
        per_experiment = dict(
            db.execute(
                "select t.value, count(*) from runs r join tags t on t.run_uuid = r.run_uuid "
                "where t.key = 'dvc_exp_name' and r.status = 'FINISHED' and r.name like 'profile_model/%' "
                "group by t.value"
            ).fetchall()
        )
    assert {name: per_experiment.get(name) for name in names} == {name: 1 for name in names}
    shown = run(["dvc", "exp", "show", "--csv"], repo, env).stdout
    assert all(name in shown for name in names)

    collected = run(["synthaug", "sweep", "profile_model.batch_size"], repo, env)
    provenance = json.loads((repo / "metrics/sweeps/profile_model.batch_size.provenance.json").read_text())
    assert set(provenance["experiments"]) >= set(names) and len(provenance["code"]) == 1
    assert "profile_model.batch_size" not in provenance["params"] and provenance["params_vary"] == []
    # a table whose provenance is unknown (as the committed ones of earlier code) is marked, not shown as this run's
    shutil.copy(repo / "metrics/sweeps/profile_model.batch_size.csv", repo / "metrics/sweeps/train.augment_p.csv")
    rows = list(csv.DictReader((repo / "metrics/sweeps/profile_model.batch_size.csv").read_text().splitlines()))
    values = sorted({float(row["value"]) for row in rows})
    assert values == [16.0, 24.0, 64.0]  # the two experiments and the committed baseline
    for row in rows:  # profile_model.batch_size reaches no classifier: every value has the committed scores
        assert float(row["mean"]) == pytest.approx(
            mean_over_seeds(repo, f"vit-{row['variant']}", "macro_f1"), abs=1e-6
        )  # CSV: 6 places
        best_val = [joined(repo, f"train/vit-{row['variant']}/seed{s}.json")["best_val_macro_f1"] for s in SEEDS]
        assert float(row["val_mean"]) == pytest.approx(np.mean(best_val), abs=1e-6)
        assert int(row["seeds"]) == len(SEEDS)
    assert (
        "| profile_model.batch_size → (val macro-F1 / test macro_f1) | 16 | 24 | 64 | chosen on validation |"
        in collected.stdout
    )
    # a variant that adds generated images: how many per class, read from each experiment's cached records
    synthetic = json.loads((repo / "metrics/synthetic/gan.json").read_text())
    per_class = synthetic["synthetic_total"] / len(synthetic["synthetic_per_class"])
    added = [row for row in rows if row["variant"] == "synthetic_gan"]
    assert len(added) == 3 and all(
        float(row["generated_per_class"]) == pytest.approx(per_class, abs=0.05) for row in added
    )
    assert all(float(row["compute_seconds"]) > 0 for row in added)
    reran = run(["dvc", "repro"], repo, env)
    assert re.findall(r"Running stage '([^']+)'", reran.stdout) == ["report"]
    assert (repo / "metrics/report/sweep_profile_model.batch_size.png").is_file()
    assert (repo / "metrics/report/sweep_profile_model.batch_size_amount.png").is_file()
    assert not (repo / "metrics/report/sweep_train.augment_p.png").exists()
    markdown = (repo / "metrics/report.md").read_text()
    assert "## Sweep profile_model.batch_size\n" in markdown and "from experiments at this run's code" in markdown
    assert "## Sweep train.augment_p (not from this run)\n\n**Not from this run** (no provenance recorded" in markdown
    (repo / "metrics/sweeps/train.augment_p.csv").unlink()

    # choice lists combine into a grid: 2 x 2 experiments queued (and removed again, not run)
    result = run(
        ["dvc", "exp", "run", "--queue", "-S", "fid.kid_subsets=3,4", "-S", "fid.precision_recall_k=1,2"], repo, env
    )
    combinations = re.findall(
        r"\['fid.kid_subsets=(\d)', 'fid.precision_recall_k=(\d)'\]", result.stdout + result.stderr
    )
    assert sorted(combinations) == [("3", "1"), ("3", "2"), ("4", "1"), ("4", "2")]
    run(["dvc", "queue", "remove", "--queued"], repo, env)


def test_exp_run_reruns_only_what_the_changed_param_reaches(pipeline_repo):
    repo, env = pipeline_repo
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "--allow-empty", "-qm", "baseline results"], repo, env)
    fid_before = json.loads((repo / "metrics/fid/gan.json").read_text())
    baseline_before = read_metrics(repo, ENTRIES[0])
    result = run(["dvc", "exp", "run", "-S", "train_generator.gan.steps=4"], repo, env)
    ran = set(re.findall(r"Running stage '([^']+)'", result.stdout))
    assert ran == {
        "train_generator@gan",
        "synthesize@gan",
        "train_synthetic@vit-synthetic-gan",
        "train_synthetic@vit-synthetic_only-gan",
        "train_synthetic@vit-real_equal-gan",
        "train_composed@vit-gan-logit_adjusted",
        "train_careful@vit-gan-finetuned",
        "fid@gan",
        "report",
    }
    assert yaml.safe_load((repo / "params.yaml").read_text())["train_generator"]["gan"]["steps"] == 4
    assert json.loads((repo / "models/generators/gan/seed0/generator.json").read_text())["steps"] == 4
    fid_after = json.loads((repo / "metrics/fid/gan.json").read_text())
    assert fid_after["fid_classifier_features"] != fid_before["fid_classifier_features"]
    assert read_metrics(repo, ENTRIES[0]) == baseline_before
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo, env).stdout)
    changed = diff["metrics/fid/gan.json"]["fid_classifier_features"]
    assert (changed["old"], changed["new"]) == (
        fid_before["fid_classifier_features"],
        fid_after["fid_classifier_features"],
    )
    assert "metrics/eval/vit-baseline/seed0.json" not in diff
    # every entry's class-group and calibration scores are in the diff, changed or not
    every = json.loads(run(["dvc", "metrics", "diff", "--all", "--json"], repo, env).stdout)
    groups = {f"{score}_{group}" for score in ("f1", "recall") for group in ("many", "medium", "few")}
    assert {"ece", *groups} <= set(every["metrics/eval/vit-synthetic_gan/seed0.json"])
    # Back to the committed value: every stage but the report (whose outputs stay in git) comes from the run-cache.
    committed = yaml.safe_load(run(["git", "show", "HEAD:params.yaml"], repo, env).stdout)
    steps = committed["train_generator"]["gan"]["steps"]
    back = run(["dvc", "exp", "run", "-S", f"train_generator.gan.steps={steps}"], repo, env)
    assert set(re.findall(r"Running stage '([^']+)'", back.stdout)) == {"report"}
    assert set(re.findall(r"Stage '([^']+)' is cached - skipping run", back.stdout)) == ran - {"report"}
    assert json.loads((repo / "metrics/fid/gan.json").read_text()) == fid_before


def test_dvc_metrics_show_fits_a_terminal(pipeline_repo):
    """Metrics files hold the headline figures only; per-class tables are in metrics/detail/, not in this table."""
    repo, env = pipeline_repo
    shown = run(["dvc", "metrics", "show"], repo, env).stdout.splitlines()
    header = shown[0].split()
    assert header == [
        "Path",
        "accuracy",
        "best_val_macro_f1",
        "ece",
        "f1_few",
        "f1_many",
        "f1_medium",
        "fid_classifier_features",
        "kid_mean_classifier_features",
        "macro_f1",
        "minority_recall",
        "recall_few",
        "recall_many",
        "recall_medium",
        "seconds",
    ]
    assert max(len(line) for line in shown) <= 290  # 285 here: the longest path is 58 characters
    assert len(shown) == 1 + 2 * len(ENTRIES) * len(SEEDS) + len(GENERATORS)  # eval and train per seed, fid
    shown = run(["dvc", "exp", "show", "--csv"], repo, env).stdout
    assert {row["train_generator.gan.steps"] for row in csv.DictReader(io.StringIO(shown))} >= {"4", "6"}


def test_remote_round_trip_makes_a_fresh_clone_up_to_date(pipeline_repo, tmp_path):
    """dvc push to a directory remote, git clone, dvc pull: the clone's dvc repro has nothing to do."""
    repo, env = pipeline_repo
    run(["dvc", "remote", "add", "--force", "-d", "store", str(tmp_path / "remote")], repo, env)
    run(["dvc", "push"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "--allow-empty", "-qm", "results and remote"], repo, env)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    assert not (clone / f"models/classifiers/{ENTRIES[0]}").exists()  # only DVC's .gitignore came with git
    run(["dvc", "pull"], clone, env)
    assert (clone / f"models/classifiers/{ENTRIES[0]}/seed1/model.safetensors").read_bytes() == (
        repo / f"models/classifiers/{ENTRIES[0]}/seed1/model.safetensors"
    ).read_bytes()
    result = run(["dvc", "repro"], clone, {**env, "PYTHONPATH": str(clone / "src")})
    assert "Running stage" not in result.stdout and "up to date" in result.stdout
