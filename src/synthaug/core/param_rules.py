"""Loading params.yaml: each section validated into its model, unknown keys and sections refused, and the rules
between sections; every problem a one-line ParamsError naming the key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from synthaug.core.errors import ParamsError
from synthaug.core.generator_params import SynthesizeParams, TrainGeneratorParams
from synthaug.core.io import redact_url
from synthaug.core.params import (
    ExperimentParams,
    FetchParams,
    FidParams,
    HpoParams,
    ImbalanceParams,
    ProfileModelParams,
    Section,
    TrackingParams,
    TrainParams,
)

PARAMS_FILE = "params.yaml"

SECTIONS: dict[str, type[Section]] = {
    "fetch": FetchParams,
    "imbalance": ImbalanceParams,
    "train_generator": TrainGeneratorParams,
    "synthesize": SynthesizeParams,
    "train": TrainParams,
    "fid": FidParams,
    "profile_model": ProfileModelParams,
    "hpo": HpoParams,
    "experiment": ExperimentParams,
    "tracking": TrackingParams,
}

S = TypeVar("S", bound=Section)


def _describe(error: ErrorDetails, section: str, model: type[Section]) -> str:
    key = ".".join([section, *map(str, error["loc"])])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (allowed: {', '.join(_allowed_keys(model, error['loc'][:-1]))})"
    if error["type"] == "value_error" and not error["loc"]:  # a cross-field rule: its message names the keys
        return str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{key}: missing"
    return f"{key}: {str(error['msg']).removeprefix('Value error, ')} (got {redact_url(error.get('input'))!r})"


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc:
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def parse_section(name: str, raw: Any, model: type[S]) -> S:
    """Validate one section's raw dict into its typed model, or raise ParamsError naming the key."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{name}: expected a mapping, got {raw!r}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(e, name, model) for e in exc.errors())
        raise ParamsError(f"{PARAMS_FILE}: {problems}") from None


def load_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: not found (run from the repository root)")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections")
    return data


def load_section(name: str, model: type[S], path: str | Path = PARAMS_FILE) -> S:
    """Read and validate one top-level section of params.yaml."""
    data = load_params(path)
    if name not in data:
        raise ParamsError(f"{path}: missing section '{name}'")
    return parse_section(name, data[name], model)


def _judge_is_trained(sections: dict[str, Any]) -> str | None:
    judge, variants = sections["train"].synthetic_filter.judge, sections["experiment"].variants
    if judge in variants:
        return None
    return (
        f"train.synthetic_filter.judge: {judge!r} is not in experiment.variants {variants}; "
        "the pipeline must train the judge (add it there, or pick one of them)"
    )


def _teacher_is_trained(sections: dict[str, Any]) -> str | None:
    distill, experiment = sections["train"].distill, sections["experiment"]
    if not experiment.distilled or (
        distill.teacher in experiment.variants and distill.teacher_classifier in experiment.classifiers
    ):
        return None
    return (
        f"train.distill: the teacher {distill.teacher_classifier}-{distill.teacher} is not trained "
        f"(experiment.classifiers {experiment.classifiers}, experiment.variants {experiment.variants}); the pipeline "
        "must train it before experiment.distilled can learn from it"
    )


def _real_phase_inside_the_run(sections: dict[str, Any]) -> str | None:
    train, experiment = sections["train"], sections["experiment"]
    if "finetuned" not in experiment.careful or train.careful.real_epochs < train.epochs:
        return None
    return (
        f"train.careful.real_epochs: {train.careful.real_epochs} must be below train.epochs {train.epochs} "
        "while experiment.careful has finetuned"
    )


@dataclass(frozen=True)
class CrossSectionRule:
    """A rule between params sections, and the stages that would otherwise fail on it (DVC's "missing dependency"
    for an entry the matrix never trains). `problem` gets the validated sections and names the key it refuses."""

    sections: tuple[str, ...]
    stages: tuple[str, ...]
    problem: Callable[[dict[str, Any]], str | None]


CROSS_SECTION_RULES = (
    # the synthetic variants' filter reads the judge entry's checkpoints
    CrossSectionRule(("train", "experiment"), ("train_synthetic", "train_composed"), _judge_is_trained),
    # the distilled variant learns from the teacher entry's checkpoints
    CrossSectionRule(("train", "experiment"), ("train_distilled",), _teacher_is_trained),
    # finetuned_<g> ends on real images: that phase must leave a first one
    CrossSectionRule(("train", "experiment"), ("train_careful",), _real_phase_inside_the_run),
)


def checked_sections(data: dict[str, Any]) -> tuple[dict[str, Section], list[str]]:
    """The sections of a params.yaml dict that validate, and every problem, one line each: unknown and missing
    sections, each section's bad keys, then every cross-section rule whose sections are valid."""
    problems = []
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        problems.append(f"{PARAMS_FILE}: unknown section(s) {unknown} (allowed: {', '.join(SECTIONS)})")
    missing = sorted(set(SECTIONS) - set(data))
    if missing:
        problems.append(f"{PARAMS_FILE}: missing section(s) {missing}")
    sections: dict[str, Section] = {}
    for name, model in SECTIONS.items():
        if name not in data:
            continue
        try:
            sections[name] = parse_section(name, data[name], model)
        except ParamsError as error:
            problems.append(str(error))
    for rule in CROSS_SECTION_RULES:
        if all(name in sections for name in rule.sections):
            problem = rule.problem(sections)
            if problem is not None:
                problems.append(f"{PARAMS_FILE}: {problem}")
    return sections, problems


def params_problems(data: dict[str, Any]) -> list[str]:
    """Every problem of a params.yaml dict, one line each (checked_sections)."""
    return checked_sections(data)[1]


def validate_all(data: dict[str, Any]) -> dict[str, Section]:
    """Every section validated, unknown top-level sections refused, every cross-section rule kept; or ParamsError
    with the first problem."""
    sections, problems = checked_sections(data)
    if problems:
        raise ParamsError(problems[0])
    return sections


def check_stage_rules(stage: str, path: str | Path = PARAMS_FILE) -> None:
    """The cross-section rules that concern `stage`, run before it starts: ParamsError naming the key."""
    for rule in CROSS_SECTION_RULES:
        if stage in rule.stages:
            sections = {name: load_section(name, SECTIONS[name], path) for name in rule.sections}
            problem = rule.problem(sections)
            if problem is not None:
                raise ParamsError(f"{path}: {problem}")
