"""What the report says, section by section: its inputs read once from the metrics folder, its figures, and its
sections (synthaug.metrics.document writes them as Markdown and HTML)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from synthaug.data.imbalance import minority_classes
from synthaug.generator_runs import SHARED_RUN, run_folders
from synthaug.io import read_json
from synthaug.metrics import document as doc
from synthaug.metrics.report import (
    EntryResult,
    class_counts_figure,
    comparison_markdown,
    comparison_rows,
    confusions_figure,
    curves_figure,
    distillation_note,
    entries_by_generator,
    filter_note,
    generator_markdown,
    generator_notes,
    load_entry_result,
    markdown_table,
    model_profile_markdown,
    per_class_generator_markdown,
    per_class_recall_markdown,
    read_stage_metrics,
    recall_vs_count_figure,
    run_readings,
    sweep_heatmap_figure,
    sweep_markdown,
    synthetic_variants,
    unusable_generators,
    unusable_note,
    unusable_variants,
    variant_compute,
    variant_label,
    verdict_cell,
    verdict_rows,
    verdicts_markdown,
)
from synthaug.metrics.sweeps import provenance_file, read_sweep_csv, sweep_staleness
from synthaug.params import (
    DISTILLED_VARIANT,
    REAL_EQUAL_PREFIX,
    SYNTHETIC_ONLY_PREFIX,
    SYNTHETIC_PREFIX,
    ExperimentParams,
    added_generator,
    composed_variant,
    generator_variant,
)

SEED_VARIES = {
    "per_seed": "a seed varies the classifier's initialization, batch order, augmentation and oversampled's copies, "
    "and for a synthetic variant also its generator: seed k trains and samples its own generator run (SDXL-Turbo: "
    "its own sampling seed), so the interval includes the generator's variance; the imbalanced split stays fixed",
    "shared": "a seed varies the classifier's initialization, batch order, augmentation and oversampled's copies; "
    "the imbalanced split and the one shared generator run stay fixed (experiment.generator_runs: shared), so a "
    "synthetic verdict is conditional on that generator run",
}


def verdict_note(generator_runs: str) -> str:
    return (
        f"Each variant's test macro-F1 minus the reference's, seed by seed ({SEED_VARIES[generator_runs]}), with the "
        "95 % t interval of those differences and its half-width: a 'within noise' row saw no effect larger than the "
        "interval allows. The verdict is the paired t test's (the test that interval inverts), corrected with Holm's "
        "step-down over every comparison the table prints, so the chance of any false 'beats' or 'loses' in the "
        "table stays at 5 %: beats or loses where the adjusted p is below 0.05, within noise otherwise; where the "
        "uncorrected interval alone would say more, the cell says so. With one seed there is no interval. Compute: "
        "seconds recorded by the stages (classifier training loop, mean over seeds; for a synthetic variant also the "
        "training of the generator run it used and the synthesis of its images), on the device named; extra compute "
        "per point is priced only where the gain over baseline is established."
    )


def selection_note(select: str) -> str:
    """Which weights every test score comes from (train.select)."""
    if select == "last":
        return "Every entry is tested with the weights of its last epoch (train.select: last)."
    return (
        "Every entry is tested with the weights of its epoch with the best validation macro-F1 "
        "(train.select: best_val)."
    )


STALE_SWEEP = "**Not from this run** ({why}): shown for reference; its numbers may not hold for this code and params."


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report reads, from the stages' outputs under the metrics folder."""

    experiment: ExperimentParams
    results: list[EntryResult]  # every (classifier, variant, seed) of the comparison
    cas: dict[str, list[EntryResult]]  # per generator: the first classifier trained on its images alone
    equal_size: dict[str, list[EntryResult]]  # per generator: the same, on as many real images per class
    counts: dict[str, dict[str, int]]  # split -> class -> images
    scores: dict[str, dict]  # per generator: FID/KID and their per-class detail
    syntheses: dict[str, dict]  # per generator: images made per class, seconds
    trainings: dict[str, dict]  # per generator: its training summary
    profiles: list[dict]  # per classifier: its cost
    judge: str  # train.synthetic_filter.judge
    select: str  # train.select: which epoch's weights each entry is tested with
    sweeps: dict[str, tuple[list[dict], str | None]]  # key -> (rows, why stale or None)

    @property
    def minority(self) -> list[str]:
        return minority_classes(self.counts["train"])

    @property
    def synthetic(self) -> dict[str, dict[str, int]]:
        return {g: meta["synthetic_per_class"] for g, meta in self.syntheses.items()}

    @property
    def class_names(self) -> list[str]:
        return list(self.counts["train"])

    @property
    def unusable(self) -> dict[str, str]:
        """Generators whose added images a real-data classifier labels at chance, with why."""
        return unusable_generators(self.scores, self.synthetic)


def load_report_inputs(
    metrics: Path, experiment: ExperimentParams, judge: str, select: str, code: str, params_flat: dict
) -> ReportInputs:
    """Read the stage outputs; sweeps (committed by `synthaug sweep`) are current only at this code and params."""
    synthetic = [generator_variant(SYNTHETIC_PREFIX, g) for g in experiment.generators] + [
        composed_variant(g, remedy) for g in experiment.generators for remedy in experiment.composed
    ]
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
        judge=judge,
        select=select,
        sweeps=sweeps,
    )


def report_figures(inputs: ReportInputs) -> dict[str, tuple[str, Figure]]:
    """File name -> (caption, figure)."""
    results, train_counts = inputs.results, inputs.counts["train"]
    return {
        "recall_vs_count.png": (
            "Per-class test recall against training images",
            recall_vs_count_figure(results, train_counts, inputs.synthetic),
        ),
        "confusion.png": ("Normalized test confusion matrices", confusions_figure(results, inputs.class_names)),
        "curves.png": ("Training curves", curves_figure(results)),
        "class_counts.png": (
            "Class counts before/after imbalance and rebalancing",
            class_counts_figure(inputs.counts, inputs.synthetic),
        ),
        **{
            f"sweep_{key}.png": (
                f"Sweep of {key}: validation macro-F1 (chosen boxed), test {rows[0]['metric']} beside",
                sweep_heatmap_figure(rows),
            )
            for key, (rows, why) in inputs.sweeps.items()
            if why is None
        },
    }


def preview_caption(generator: str, path: Path) -> str:
    if path.name == "loss.png":
        return f"{generator}: training losses"
    if path.name == "samples.png":
        return f"{generator}: samples at the end of training, one row per class"
    return f"{generator}: {path.stem} (top row real)"


def _comparison(inputs: ReportInputs, this_run: str) -> doc.Section:
    unusable = inputs.unusable
    rows = comparison_rows(inputs.results, inputs.minority)
    table = comparison_markdown(rows, inputs.minority, unusable_variants(unusable, inputs.experiment.composed))
    synthetic_results = [r for r in inputs.results if added_generator(r.variant)]
    minority = (
        f"Minority classes: the {len(inputs.minority)} with the fewest imbalanced training images "
        f"({', '.join(inputs.minority)}). {filter_note(synthetic_results or inputs.results, inputs.judge)}"
        + distillation_note(inputs.results)
        + f" {selection_note(inputs.select)}"
    )
    blocks = [doc.table(table), doc.note(this_run), doc.text(minority)]
    if unusable:
        blocks.append(doc.warning(unusable_note(unusable)))
    return doc.Section("Comparison on the test split", tuple(blocks))


def _qualified(inputs: ReportInputs) -> tuple[set[str], set[str]]:
    """The variants whose images are unusable, and those whose verdicts are conditional on one generator run."""
    experiment = inputs.experiment
    flagged = unusable_variants(inputs.unusable, experiment.composed)
    shared = experiment.generator_runs == "shared"
    return flagged, synthetic_variants(experiment.generators, experiment.composed) if shared else set()


def _verdicts(inputs: ReportInputs, this_run: str) -> doc.Section:
    flagged, conditional = _qualified(inputs)
    costs = variant_compute(inputs.results, inputs.trainings, inputs.syntheses)
    table = verdicts_markdown(verdict_rows(inputs.results), flagged=flagged, costs=costs, conditional=conditional)
    note = verdict_note(inputs.experiment.generator_runs)
    return doc.Section("Verdicts", (doc.table(table), doc.note(this_run), doc.text(note)))


def pipeline_headline(inputs: ReportInputs) -> tuple[dict[str, float], dict[str, str]]:
    """What the pipeline execution's MLflow run carries: each entry's test macro-F1 and accuracy (mean over the
    seeds) as metrics, and each verdict as the report words it, qualifiers included, as tags."""
    metrics = {}
    for row in comparison_rows(inputs.results, inputs.minority):
        entry = f"{row['classifier']}-{row['variant']}"
        metrics[f"test_macro_f1.{entry}"] = row["macro_f1"][0]
        metrics[f"test_accuracy.{entry}"] = row["accuracy"][0]
    flagged, conditional = _qualified(inputs)
    tags = {}
    for row in verdict_rows(inputs.results):
        label = variant_label(row["variant"], flagged, conditional)
        for reference, comparison in row["comparisons"].items():
            tags[f"verdict.{row['classifier']}-{row['variant']}.vs_{reference}"] = (
                f"{label}: {verdict_cell(comparison)}"
            )
    return metrics, tags


def _per_class_recall(inputs: ReportInputs, this_run: str) -> doc.Section:
    table = per_class_recall_markdown(inputs.results, inputs.counts["train"])
    explained = "Mean ± sample std over the seeds; classes with the fewest imbalanced training images first."
    return doc.Section("Per-class test recall", (doc.table(table), doc.note(this_run), doc.text(explained)))


def _generators(inputs: ReportInputs, this_run: str) -> doc.Section:
    cas_classifier = inputs.experiment.classifiers[0]
    real_full = [r for r in inputs.results if r.classifier == cas_classifier and r.variant == "full"]
    unusable = inputs.unusable
    warnings = generator_notes(inputs.scores) + ([unusable_note(unusable)] if unusable else [])
    features = (
        "Distances on the real test set, same class distribution, N images per side. Inception rows are FID at the "
        "dims shown; classifier-feature rows use the full-data classifier's penultimate features and are not "
        f"comparable to FID. CAS (Ravuri & Vinyals 2019): {cas_classifier} trained on the generator's evaluation "
        "images alone, accuracy on the real test set, beside the same classifier with the same params trained on as "
        "many real images per class (drawn balanced from the real train pool), their ratio, and the accuracy on the "
        "full real data; each picks its epoch on the real validation split. "
        "'Real classifier on generated': the full-data classifier's accuracy on the generated images."
    )
    return doc.Section(
        "Generators",
        (
            *(doc.warning(w) for w in warnings),
            doc.table(generator_markdown(inputs.scores, inputs.trainings, inputs.cas, real_full, inputs.equal_size)),
            doc.note(this_run),
            doc.text(features),
            *(
                block
                for label, result in inputs.scores.items()
                for block in (
                    doc.subheading(f"Per class: {label}"),
                    doc.table(per_class_generator_markdown({label: result}, inputs.class_names, inputs.cas)),
                    doc.note(this_run),
                )
            ),
        ),
    )


def _data(inputs: ReportInputs, this_run: str) -> doc.Section:
    counts, synthetic = inputs.counts, inputs.synthetic
    table = markdown_table(
        ["class", "before imbalance", "after imbalance", *(f"+ {g}" for g in synthetic)],
        [
            [
                c,
                str(counts["full"][c]),
                str(counts["train"][c]),
                *(str(counts["train"][c] + s[c]) for s in synthetic.values()),
            ]
            for c in inputs.class_names
        ],
    )
    return doc.Section("Data", (doc.table(table), doc.note(this_run)))


def _sweeps(inputs: ReportInputs) -> list[doc.Section]:
    sections = []
    for key, (rows, why) in inputs.sweeps.items():
        if why is None:
            made = "Made by `synthaug sweep` from experiments at this run's code and params (the swept key aside)."
            sections.append(doc.Section(f"Sweep {key}", (doc.table(sweep_markdown(rows)), doc.note(made))))
    for key, (rows, why) in inputs.sweeps.items():
        if why is not None:
            stale = (doc.warning(STALE_SWEEP.format(why=why)), doc.table(sweep_markdown(rows)))
            sections.append(doc.Section(f"Sweep {key} (not from this run)", stale))
    return sections


def report_sections(
    inputs: ReportInputs, figures: dict[str, tuple[str, Path]], metrics: Path, this_run: str, commit: str, params: str
) -> list[doc.Section]:
    """The report, in order; `figures`: file name -> (caption, written path); `params`: params.yaml's text."""
    previews = {}
    for g in inputs.experiment.generators:  # the first run's: each run's are in metrics/{generators,synthetic}/<g>/
        run = next(iter(run_folders(metrics / "synthetic" / g)), SHARED_RUN)
        label = g if run == SHARED_RUN else f"{g} ({run}; the other runs' are beside it in metrics/)"
        previews[label] = [metrics / "generators" / g / run / name for name in ("loss.png", "samples.png")] + sorted(
            (metrics / "synthetic" / g / run).glob("*.png")
        )
    return [
        _comparison(inputs, this_run),
        _verdicts(inputs, this_run),
        _per_class_recall(inputs, this_run),
        *(doc.Section(caption, (doc.image(path, caption),)) for caption, path in figures.values()),
        _generators(inputs, this_run),
        _data(inputs, this_run),
        doc.Section("Model cost", (doc.table(model_profile_markdown(inputs.profiles)), doc.note(this_run))),
        *_sweeps(inputs),
        *(
            doc.Section(
                f"Generator {g}", tuple(doc.image(p, p.stem, preview_caption(g, p)) for p in paths if p.is_file())
            )
            for g, paths in previews.items()
        ),
        doc.Section("Provenance", (doc.text(f"git commit `{commit}`"), doc.code(params))),
    ]
