"""Everything the report reads, loaded once from the metrics folder."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from synthaug.core.io import read_json
from synthaug.core.params import CarefulParams, ClassGroupsParams, ExperimentParams, TrainParams
from synthaug.core.variants import (
    DISTILLED_VARIANT,
    REAL_EQUAL_PREFIX,
    SYNTHETIC_ONLY_PREFIX,
    SYNTHETIC_PREFIX,
    careful_variant,
    composed_variant,
    generator_variant,
)
from synthaug.data.imbalance import class_groups, minority_classes
from synthaug.metrics.readings import GeneratorReading
from synthaug.report.records import (
    EntryResult,
    entries_by_generator,
    load_entry_result,
    read_stage_metrics,
    run_readings,
)
from synthaug.report.summaries import UnusableRun, unusable_generators
from synthaug.report.sweep_runs import provenance_file, read_sweep_csv, sweep_staleness


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report reads, from the stages' outputs under the metrics folder."""

    experiment: ExperimentParams
    results: list[EntryResult]  # every (classifier, variant, seed) of the comparison
    cas: dict[str, list[EntryResult]]  # per generator: the first classifier trained on its images alone
    equal_size: dict[str, list[EntryResult]]  # per generator: the same, on as many real images per class
    counts: dict[str, dict[str, int]]  # split -> class -> images
    scores: dict[str, GeneratorReading]  # per generator run (run_readings): FID/KID, per class too
    syntheses: dict[str, dict]  # per generator: images made per class, seconds
    trainings: dict[str, dict]  # per generator: its training summary
    profiles: list[dict]  # per classifier: its cost
    judge: str  # train.synthetic_filter.judge
    select: str  # train.select: which epoch's weights each entry is tested with
    class_groups: ClassGroupsParams  # train.class_groups
    careful: CarefulParams  # train.careful: how weighted_<g> and finetuned_<g> use the generated images
    sweeps: dict[str, tuple[list[dict], str | None]]  # key -> (rows, why stale or None)

    @property
    def minority(self) -> list[str]:
        return minority_classes(self.counts["train"])

    @cached_property
    def groups(self) -> dict[str, list[str]]:
        """The many / medium / few classes, by imbalanced training images (train.class_groups)."""
        return class_groups(self.counts["train"], self.class_groups.many_from, self.class_groups.few_upto)

    @property
    def synthetic(self) -> dict[str, dict[str, int]]:
        return {g: meta["synthetic_per_class"] for g, meta in self.syntheses.items()}

    @property
    def class_names(self) -> list[str]:
        return list(self.counts["train"])

    @cached_property
    def unusable(self) -> dict[str, list[UnusableRun]]:
        """Generators with a run whose added images are mostly of classes found not usable."""
        return unusable_generators(self.scores, self.synthetic)


def load_report_inputs(
    metrics: Path, experiment: ExperimentParams, train: TrainParams, code: str | None, params_flat: dict
) -> ReportInputs:
    """Read the stage outputs; sweeps (committed by `synthaug sweep`) are current only at this code and params."""
    synthetic = [generator_variant(SYNTHETIC_PREFIX, g) for g in experiment.generators] + [
        composed_variant(g, remedy) for g in experiment.generators for remedy in experiment.composed
    ]
    synthetic += [careful_variant(use, g) for g in experiment.generators for use in experiment.careful]
    results = [
        load_entry_result(metrics, classifier, variant, seed)
        for classifier in experiment.classifiers
        for variant in [
            *experiment.variants,
            *([DISTILLED_VARIANT] if classifier in experiment.distilled else []),
            *synthetic,
        ]
        for seed in experiment.seeds
    ]
    # CAS: the first classifier (the one fid's features come from) trained on each generator's images alone, and
    # on as many real images.
    cas, equal_size = (
        entries_by_generator(
            [
                load_entry_result(metrics, experiment.classifiers[0], generator_variant(prefix, g), seed)
                for g in experiment.generators
                for seed in experiment.seeds
            ],
            prefix,
        )
        for prefix in (SYNTHETIC_ONLY_PREFIX, REAL_EQUAL_PREFIX)
    )
    sweeps = {}
    for path in sorted((metrics / "sweeps").glob("*.csv")):
        collected = read_sweep_csv(path)
        provenance = read_json(provenance_file(path)) if provenance_file(path).is_file() else None
        if collected:
            sweeps[path.stem] = (collected, sweep_staleness(provenance, code, params_flat))
    generators = experiment.generators
    return ReportInputs(
        experiment=experiment,
        results=results,
        cas=cas,
        equal_size=equal_size,
        counts=read_json(metrics / "class_counts.json")["counts"],
        scores=run_readings({g: read_stage_metrics(metrics, f"fid/{g}.json") for g in generators}),
        syntheses={g: read_json(metrics / "synthetic" / f"{g}.json") for g in generators},
        trainings={g: read_json(metrics / "generators" / f"{g}.json") for g in generators},
        profiles=[read_json(metrics / "profile" / f"{c}.json") for c in experiment.classifiers],
        judge=train.synthetic_filter.judge,
        select=train.select,
        class_groups=train.class_groups,
        careful=train.careful,
        sweeps=sweeps,
    )
