"""What the report says, section by section, and the headline the pipeline's MLflow run carries
(synthaug.report.document writes the sections as Markdown and HTML)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from synthaug.core.generator_runs import SHARED_RUN, run_folders
from synthaug.core.variants import added_generator
from synthaug.report import document as doc
from synthaug.report.figures import (
    class_counts_figure,
    confusions_figure,
    curves_figure,
    recall_vs_count_figure,
    reliability_figure,
)
from synthaug.report.inputs import ReportInputs
from synthaug.report.notes import (
    STALE_SWEEP,
    careful_note,
    compute_note,
    distillation_note,
    filter_note,
    generator_notes,
    selection_note,
    setup_note,
    unusable_note,
    verdict_note,
    weights_note,
)
from synthaug.report.records import generator_of
from synthaug.report.summaries import (
    comparison_rows,
    group_rows,
    synthetic_variants,
    unusable_variants,
    variant_compute,
    verdict_rows,
)
from synthaug.report.sweeps import (
    adds_images,
    amount_figure,
    amount_markdown,
    sweep_heatmap_figure,
    sweep_markdown,
)
from synthaug.report.tables import (
    comparison_markdown,
    generator_markdown,
    group_markdown,
    markdown_table,
    model_profile_markdown,
    per_class_generator_markdown,
    per_class_recall_markdown,
    unusable_markdown,
    variant_label,
    verdict_cell,
    verdicts_markdown,
    weighted_equals_macro,
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
        "reliability.png": ("Calibration: test accuracy against confidence", reliability_figure(results)),
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
        **{
            f"sweep_{key}_amount.png": (
                f"Sweep of {key}: test {rows[0]['metric']} against generated images per class",
                amount_figure(rows),
            )
            for key, (rows, why) in inputs.sweeps.items()
            if why is None and adds_images(rows)
        },
    }


def preview_caption(generator: str, path: Path) -> str:
    if path.name == "loss.png":
        return f"{generator}: training losses"
    if path.name == "samples.png":
        return f"{generator}: samples at the end of training, one row per class"
    return f"{generator}: {path.stem} (top row real)"


def _answer(inputs: ReportInputs) -> doc.Section:
    """Each remedy's gain over baseline and oversampling with its verdict, then the flagged generator runs."""
    flagged, conditional = _qualified(inputs)
    costs = variant_compute(inputs.results, inputs.trainings, inputs.syntheses)
    rows = verdict_rows(inputs.results, groups=inputs.groups)
    table = verdicts_markdown(rows, flagged=flagged, costs=costs, conditional=conditional)
    run = inputs.experiment
    blocks = [doc.text(setup_note(run.preset, run.description, run.classifiers, len(run.seeds))), doc.table(table)]
    if inputs.unusable:
        blocks += [doc.subheading("Generator runs with unusable images"), doc.table(unusable_markdown(inputs.unusable))]
    return doc.Section("Answer: does each remedy beat baseline and oversampling?", tuple(blocks))


def _comparison(inputs: ReportInputs) -> doc.Section:
    rows = comparison_rows(inputs.results, inputs.minority)
    flagged = unusable_variants(inputs.unusable, inputs.experiment.composed)
    synthetic_results = [r for r in inputs.results if added_generator(r.variant)]
    minority = (
        f"Minority classes: the {len(inputs.minority)} with the fewest imbalanced training images "
        f"({', '.join(inputs.minority)}). {filter_note(synthetic_results or inputs.results, inputs.judge)}"
        + distillation_note(inputs.results)
        + f" {selection_note(inputs.select)}"
    )
    table = comparison_markdown(rows, inputs.minority, flagged)
    groups = inputs.groups
    grouped = group_markdown(group_rows(inputs.results, groups), groups, flagged)
    members = "; ".join(f"{group}: {', '.join(names)}" for group, names in groups.items())
    listed = f"Class groups by imbalanced training images (train.class_groups): {members}."
    by_group = (doc.subheading("By class group"), doc.table(grouped), doc.text(listed))
    return doc.Section("Scores on the test split", (doc.table(table), doc.text(minority), *by_group))


def _qualified(inputs: ReportInputs) -> tuple[set[str], set[str]]:
    """The variants whose images are unusable, and those whose verdicts are conditional on one generator run."""
    experiment = inputs.experiment
    flagged = unusable_variants(inputs.unusable, experiment.composed)
    shared = experiment.generator_runs == "shared"
    return flagged, synthetic_variants(experiment.generators, experiment.composed) if shared else set()


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
    for row in verdict_rows(inputs.results):  # over all classes: the groups' verdicts are in the report
        label = variant_label(row["variant"], flagged, conditional)
        for reference, comparison in row["comparisons"].items():
            tags[f"verdict.{row['classifier']}-{row['variant']}.vs_{reference}"] = (
                f"{label}: {verdict_cell(comparison)}"
            )
    return metrics, tags


def _per_class_recall(inputs: ReportInputs) -> doc.Section:
    table = per_class_recall_markdown(inputs.results, inputs.counts["train"])
    return doc.Section("Per-class test recall", (doc.table(table),))


def _generators(inputs: ReportInputs) -> doc.Section:
    cas_classifier = inputs.experiment.classifiers[0]
    real_full = [r for r in inputs.results if r.classifier == cas_classifier and r.variant == "full"]
    by_generator: dict[str, dict] = {}
    for label, reading in inputs.scores.items():
        by_generator.setdefault(generator_of(label), {})[label] = reading
    table = generator_markdown(inputs.scores, inputs.trainings, inputs.cas, real_full, inputs.equal_size)
    return doc.Section(
        "Generators",
        (
            *(doc.warning(w) for w in generator_notes(inputs.scores)),
            doc.table(table),
            *((doc.note(weights),) if (weights := weights_note(inputs.syntheses)) else ()),
            *(
                block
                for generator, readings in by_generator.items()
                for block in (
                    doc.subheading(f"Per class: {generator}"),
                    doc.table(per_class_generator_markdown(readings, inputs.class_names, inputs.cas)),
                )
            ),
        ),
    )


def _how_to_read(inputs: ReportInputs) -> doc.Section:
    """What every table means, said once."""
    cas_classifier = inputs.experiment.classifiers[0]
    rows = comparison_rows(inputs.results, inputs.minority)
    paragraphs = [verdict_note(inputs.experiment.generator_runs), compute_note()]
    if inputs.experiment.careful:
        paragraphs.append(careful_note(inputs.careful.synthetic_weight, inputs.careful.real_epochs))
    if inputs.scores:
        reading = next(iter(inputs.scores.values()))
        paragraphs.append(f"**Flags.** {unusable_note(reading.usable_margin, reading.usable_level)}")
    paragraphs.append(
        "**Scores.** Mean ± sample std [95 % t interval] over the seeds. Minority recall is the mean recall of the "
        "minority classes. ECE: expected calibration error of the top label, in equal-width confidence bins."
        + (
            " Weighted F1 equals macro-F1 here (the test split is balanced), so the table leaves it out."
            if weighted_equals_macro(rows)
            else ""
        )
        + " Per-class recall lists the classes with the fewest imbalanced training images first."
    )
    if inputs.scores:
        paragraphs.append(
            "**Generators.** Distances to the real test set, same class distribution, N images per side. Inception "
            "rows are FID at the dims shown; classifier-feature rows use the full-data classifier's penultimate "
            "features and are not comparable to published FID. CAS (Ravuri & Vinyals 2019): "
            f"{cas_classifier} trained on the generator's evaluation images alone, tested on the real test set, "
            "beside the same classifier trained on as many real images per class; each picks its epoch on the real "
            "validation split. 'Real classifier on generated': the full-data classifier's accuracy on the "
            "generated images. Per class, the judge is the full-data classifier: the share of a class's generated "
            "images it labels as that class, minus the share of the other classes' images it labels so."
        )
    return doc.Section("How to read this report", tuple(doc.text(p) for p in paragraphs))


def _data(inputs: ReportInputs) -> doc.Section:
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
    return doc.Section("Data", (doc.table(table),))


def _sweeps(inputs: ReportInputs) -> list[doc.Section]:
    sections = []
    for key, (rows, why) in inputs.sweeps.items():
        if why is None:
            made = "Made by `synthaug sweep` from experiments at this run's code and params (the swept key aside)."
            amount = (doc.table(amount_markdown(rows)),) if adds_images(rows) else ()
            sections.append(doc.Section(f"Sweep {key}", (doc.table(sweep_markdown(rows)), *amount, doc.note(made))))
    for key, (rows, why) in inputs.sweeps.items():
        if why is not None:
            stale = (doc.warning(STALE_SWEEP.format(why=why)), doc.table(sweep_markdown(rows)))
            sections.append(doc.Section(f"Sweep {key} (not from this run)", stale))
    return sections


PARAMS_LISTED = "params.yaml (sha256 above) is listed in report.html; `dvc params diff` compares two runs'."


def report_sections(
    inputs: ReportInputs, figures: dict[str, tuple[str, Path]], metrics: Path, commit: str, params: str
) -> list[doc.Section]:
    """The report, in order; `figures`: file name -> (caption, written path); `params`: params.yaml's text."""
    previews = {}
    for g in inputs.experiment.generators:  # the first run's: each run's are in metrics/{generators,synthetic}/<g>/
        run = next(iter(run_folders(metrics / "synthetic" / g)), SHARED_RUN)
        label = g if run == SHARED_RUN else f"{g} ({run}; the other runs' are beside it in metrics/)"
        previews[label] = [metrics / "generators" / g / run / name for name in ("loss.png", "samples.png")] + sorted(
            (metrics / "synthetic" / g / run).glob("*.png")
        )
    model_cost = model_profile_markdown(inputs.profiles)
    return [
        _answer(inputs),
        _comparison(inputs),
        _per_class_recall(inputs),
        *(doc.Section(caption, (doc.image(path, caption),)) for caption, path in figures.values()),
        *((_generators(inputs),) if inputs.scores else ()),
        _data(inputs),
        doc.Section("Model cost", (doc.table(model_cost),)),
        *_sweeps(inputs),
        *(
            doc.Section(
                f"Generator {g}", tuple(doc.image(p, p.stem, preview_caption(g, p)) for p in paths if p.is_file())
            )
            for g, paths in previews.items()
        ),
        _how_to_read(inputs),
        doc.Section(
            "Provenance",
            (
                doc.text(f"git commit `{commit}`"),
                doc.code(params, PARAMS_LISTED),
            ),
        ),
    ]
