"""Model cost figures: FLOPs against hand counts, memory against a known allocation, the chrome trace."""

from __future__ import annotations

import json
import mmap
import time

import numpy as np
import pytest
import torch
from torch import nn

from synthaug.models.classifiers import ClassifierSpec, build_classifier, count_parameters
from synthaug.pipeline.profile_model import (
    count_flops,
    peak_memory,
    profile_classifier,
    profiles_csv,
    trace_training_steps,
)

CPU = torch.device("cpu")


def test_flops_match_a_hand_count():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10))
    assert count_flops(model, 4, CPU) == 2 * 48 * 10  # one multiply and one add per weight
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    assert count_flops(conv, 4, CPU) == 2 * (3 * 3 * 3) * 8 * 4 * 4


def test_cpu_peak_memory_sees_a_known_allocation():
    with peak_memory(CPU) as held:
        # 64 MiB of fresh anonymous pages, touched: malloc could hand back memory earlier tests freed but
        # left resident, which would not raise the RSS at all
        block = mmap.mmap(-1, 64 * 2**20)
        block.write(b"\x01" * (64 * 2**20))
        time.sleep(0.05)  # held long enough for the 1 ms sampler to run even on a loaded machine
        block.close()
    assert 48 <= held[0] <= 256
    with peak_memory(CPU) as idle:
        pass
    assert idle[0] < 16


def test_profile_of_the_cnn():
    spec = ClassifierSpec("cnn", 3, 16, dict(channels=[8, 16], dropout=0.0))
    model = build_classifier(spec)
    profile = profile_classifier(model, spec, CPU, batch_size=8, warmup=1, repeats=3)
    # conv 3->8 at 16 px, conv 8->16 at 8 px (after pooling), linear 16->3; multiply-accumulates
    macs = 3 * 9 * 8 * 16 * 16 + 8 * 9 * 16 * 8 * 8 + 16 * 3
    assert profile.macs_per_image == macs and profile.flops_per_image == 2 * macs
    assert profile.parameters == profile.trainable_parameters == count_parameters(model)
    assert profile.latency_ms > 0 and profile.throughput_images_per_s > 0 and profile.batch_size == 8
    header, row = profiles_csv([profile]).splitlines()
    assert header.split(",")[:3] == ["classifier", "device", "image_size"] and row.startswith("cnn,cpu,16,")


def test_linear_probe_profile_counts_only_the_head_as_trainable():
    spec = ClassifierSpec("timm", 3, 8, dict(name="resnet18", pretrained=False, linear_probe=True))
    profile = profile_classifier(build_classifier(spec), spec, CPU, batch_size=2, warmup=0, repeats=1)
    assert profile.trainable_parameters == 512 * 3 + 3 < profile.parameters
    assert profile.classifier == "timm (resnet18, linear probe)"  # the report's cost row names the model


def test_chrome_trace_holds_each_training_step(tmp_path):
    spec = ClassifierSpec("cnn", 3, 8, dict(channels=[4], dropout=0.0))
    path = trace_training_steps(
        build_classifier(spec), spec, CPU, batch_size=4, steps=3, out=tmp_path / "t" / "trace.json"
    )
    events = json.loads(path.read_text())["traceEvents"]
    names = {event.get("name") for event in events}
    assert {"train_step_0", "train_step_1", "train_step_2"} <= names and "train_step_3" not in names
    assert any(str(name).startswith("aten::convolution") for name in names)


def test_linear_probe_trains_the_head_only(tiny_train_params):
    from synthaug.data.storage import ImageSet
    from synthaug.train.classifier import prepare_training, train_classifier

    params = tiny_train_params.model_copy(
        update={"timm": tiny_train_params.timm.model_copy(update={"linear_probe": True}), "epochs": 1}
    )
    rng = np.random.default_rng(0)
    data = ImageSet(rng.integers(0, 255, (24, 8, 8, 3), dtype=np.uint8), np.arange(24) % 3, ("a", "b", "c"))
    setup = prepare_training("timm", "baseline", params, data)
    before = {k: v.clone() for k, v in setup.model.state_dict().items()}
    result = train_classifier(setup, data, data, params, seed=0)
    after = result.best_state
    head = {"model.fc.weight", "model.fc.bias"}
    assert all(not torch.equal(before[k], after[k]) for k in head)
    frozen = [k for k in before if k not in head]
    # weights and BatchNorm running statistics alike: the backbone stays as it was
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)


def test_pretrained_timm_offline_is_a_clear_error(monkeypatch):
    import huggingface_hub

    from synthaug.core.errors import ModelLoadError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    spec = ClassifierSpec("timm", 3, 8, dict(name="resnet18", pretrained=True, linear_probe=True))
    with pytest.raises(
        ModelLoadError, match=r"train.timm: cannot load pretrained weights for 'resnet18'.*pretrained=false"
    ):
        build_classifier(spec)


def test_profile_stage_writes_the_figures_and_a_trace_artifact(tmp_path):
    import os
    import sqlite3
    import subprocess
    import sys

    import yaml

    from synthaug.models.checkpoint import save_classifier

    from ..conftest import ROOT

    spec = ClassifierSpec("cnn", 3, 8, dict(channels=[4, 8], dropout=0.0))
    model = build_classifier(spec)
    save_classifier(tmp_path / "models/cnn-baseline/seed0", spec, model.state_dict())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["profile_model"].update(batch_size=4, warmup=1, repeats=2, steps=2, device="cpu")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "stages/profile_model.py"),
            "--classifier",
            "cnn",
            "--model",
            "models/cnn-baseline/seed0",
            "--out",
            "metrics/profile/cnn.json",
            "--traces",
            "metrics/profile/cnn",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads((tmp_path / "metrics/profile/cnn.json").read_text())
    assert figures["parameters"] == count_parameters(model) and figures["batch_size"] == 4
    assert figures["macs_per_image"] == 3 * 9 * 4 * 8 * 8 + 4 * 9 * 8 * 4 * 4 + 8 * 3
    assert sorted(p.name for p in (tmp_path / "metrics/profile/cnn").iterdir()) == ["README.txt", "trace.json"]
    names = {
        e.get("name") for e in json.loads((tmp_path / "metrics/profile/cnn/trace.json").read_text())["traceEvents"]
    }
    assert {"train_step_0", "train_step_1"} <= names
    assert f"{figures['parameters']:,} parameters" in result.stdout and "trace of 2 steps" in result.stdout
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        logged = dict(
            db.execute(
                "select m.key, m.value from metrics m join runs r on r.run_uuid = m.run_uuid where r.name = "
                "'profile_model/cnn'"
            ).fetchall()
        )
    assert logged["macs_per_image"] == figures["macs_per_image"]
    artifacts = sorted(p.name for p in (tmp_path / "mlartifacts").rglob("*.json"))
    assert artifacts == ["cnn.json", "trace.json"]
