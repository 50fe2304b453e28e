"""Params rules between sections run before any work: `synthaug check`, and each stage for the rules that concern it."""

from __future__ import annotations

import sys

import pytest
import yaml

from synthaug.core.param_rules import CROSS_SECTION_RULES
from synthaug.core.runner import run_stage
from synthaug.tools.compose import compose_params

from .conftest import ROOT

# One case per cross-section rule: the overrides that break it, the stage it concerns, the line that names the key.
BROKEN = [
    (
        ("train.synthetic_filter.judge=logit_adjusted",),
        "train_synthetic",
        "params.yaml: train.synthetic_filter.judge: 'logit_adjusted' is not in experiment.variants",
    ),
    (
        # the demo trains no student
        ("experiment.distilled=[cnn]", "train.distill.teacher_classifier=cnn", "train.distill.teacher=logit_adjusted"),
        "train_distilled",
        "params.yaml: train.distill: the teacher cnn-logit_adjusted is not trained",
    ),
    (
        ("train.epochs=1",),  # the demo trains finetuned_gan
        "train_careful",
        "params.yaml: train.careful.real_epochs: 1 must be below train.epochs 1 while experiment.careful has",
    ),
]


def test_every_cross_section_rule_has_a_case():
    assert len(BROKEN) == len(CROSS_SECTION_RULES)
    assert [stage for _, stage, _ in BROKEN] == [rule.stages[0] for rule in CROSS_SECTION_RULES]


def synthaug(monkeypatch, *argv: str) -> int:
    from synthaug.tools.cli import main

    monkeypatch.setattr(sys, "argv", ["synthaug", *argv])
    try:
        main()
    except SystemExit as exit:
        return int(exit.code or 0)
    return 0


def test_check_passes_the_presets(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    for preset in ("demo", "study", "full", "reference"):
        assert synthaug(monkeypatch, "check", f"preset={preset}") == 0
        assert f"the params of preset '{preset}' keep every rule" in capsys.readouterr().out


@pytest.mark.parametrize(("overrides", "stage", "line"), BROKEN)
def test_check_prints_one_line_per_broken_rule(monkeypatch, capsys, overrides, stage, line):
    monkeypatch.chdir(ROOT)
    assert synthaug(monkeypatch, "check", *overrides) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"synthaug check: {line}")
    assert err[-1] == "synthaug check: error: 1 problem(s) in the params; nothing was run"


def test_check_lists_every_problem_and_reads_a_params_file(monkeypatch, capsys, tmp_path):
    data = compose_params(ROOT / "conf", [override for overrides, _, _ in BROKEN for override in overrides])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    assert synthaug(monkeypatch, "check", "--params", str(tmp_path / "params.yaml")) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == len(BROKEN) + 1 and err[-1].endswith(f"{len(BROKEN)} problem(s) in the params; nothing was run")
    for printed, (_, _, line) in zip(err, BROKEN):
        assert printed.startswith(f"synthaug check: {line}")
    # a section that does not validate is one line; the rules that read it wait for it rather than guess
    data["train"]["epochs"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    assert synthaug(monkeypatch, "check", "--params", str(tmp_path / "params.yaml")) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "train.epochs: Input should be greater than or equal to 1 (got 0)" in err[0]


def test_check_names_a_key_conf_does_not_define(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert synthaug(monkeypatch, "check", "train.epoch=3") == 1
    assert "not a key of conf/config.yaml" in capsys.readouterr().err


@pytest.mark.parametrize(("overrides", "stage", "line"), BROKEN)
def test_a_stage_stops_on_its_rule_before_any_work(monkeypatch, capsys, tmp_path, overrides, stage, line):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(compose_params(ROOT / "conf", list(overrides))))
    monkeypatch.chdir(tmp_path)
    started = []
    with pytest.raises(SystemExit) as exit:
        run_stage(stage, lambda: started.append(stage) or "ran")
    assert exit.value.code == 1 and started == []
    assert capsys.readouterr().err.startswith(f"{stage}: error: {line}")
    # a stage the rule does not concern starts as usual
    run_stage("train_classifier", lambda: started.append("train_classifier") or "ran")
    assert started == ["train_classifier"]
