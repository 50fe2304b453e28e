"""DVC stage `report`: metrics/report.md and a self-contained metrics/report.html, plus their figures."""

from __future__ import annotations

import argparse
import hashlib
import html
from pathlib import Path

from synthaug.data.imbalance import minority_classes
from synthaug.io import atomic_path, read_json, rows_csv, write_text
from synthaug.metrics.plots import save_figure
from synthaug.metrics.report import (
    cas_by_generator,
    class_counts_figure,
    comparison_markdown,
    comparison_rows,
    confusions_figure,
    curves_figure,
    embedded_image,
    filter_note,
    generator_markdown,
    generator_notes,
    html_page,
    load_entry_result,
    markdown_table,
    markdown_to_html_table,
    model_profile_markdown,
    per_class_generator_markdown,
    per_class_recall_markdown,
    read_stage_metrics,
    recall_vs_count_figure,
    sweep_heatmap_figure,
    sweep_markdown,
    unusable_generators,
    unusable_note,
    unusable_variants,
    variant_compute,
    verdict_rows,
    verdicts_markdown,
)
from synthaug.metrics.sweeps import provenance_file, read_sweep_csv, sweep_staleness
from synthaug.params import PARAMS_FILE, ExperimentParams, load_params, load_section
from synthaug.provenance import code_digest, flat_params, git_commit
from synthaug.runner import run_stage
from synthaug.tracking import run_name, stage_run

VERDICT_NOTE = (
    "Each variant's test macro-F1 minus the reference's, seed by seed (a seed varies the classifier's initialization, "
    "batch order, augmentation and oversampled's copies; the imbalanced split and the generators stay fixed), with the "
    "95 % t interval of those differences. The verdict is computed from that interval: above 0 beats, below 0 loses, "
    "containing 0 is within noise; with one seed there is no interval. Compute: seconds recorded by the stages "
    "(classifier training loop, mean over seeds; for a synthetic variant also its generator's training and the "
    "synthesis of the images it adds, paid once), on the device named; extra compute per point is priced only "
    "where the gain over baseline is established."
)


def preview_caption(generator: str, path: Path) -> str:
    if path.name == "loss.png":
        return f"{generator}: training losses"
    if path.name == "samples.png":
        return f"{generator}: samples at the end of training, one row per class"
    return f"{generator}: {path.stem} (top row real)"


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", type=Path, required=True, help="the pipeline's metrics folder")
    parser.add_argument(
        "--out", type=Path, required=True, help="report path without suffix (.md, .html, and a figures folder)"
    )
    args = parser.parse_args()
    experiment = load_section("experiment", ExperimentParams)

    variants = [*experiment.variants, *(f"synthetic_{g}" for g in experiment.generators)]
    results = [
        load_entry_result(args.metrics, classifier, variant, seed)
        for classifier in experiment.classifiers
        for variant in variants
        for seed in experiment.seeds
    ]
    # CAS: the first classifier (the one fid's features come from) trained on each generator's images alone.
    cas_classifier = experiment.classifiers[0]
    cas = cas_by_generator(
        [
            load_entry_result(args.metrics, cas_classifier, f"synthetic_only_{g}", seed)
            for g in experiment.generators
            for seed in experiment.seeds
        ]
    )
    real_full = [r for r in results if r.classifier == cas_classifier and r.variant == "full"]
    counts = read_json(args.metrics / "class_counts.json")["counts"]
    minority = minority_classes(counts["train"])
    scores = {g: read_stage_metrics(args.metrics, f"fid/{g}.json") for g in experiment.generators}
    syntheses = {g: read_json(args.metrics / "synthetic" / f"{g}.json") for g in experiment.generators}
    synthetic = {g: meta["synthetic_per_class"] for g, meta in syntheses.items()}
    unusable = unusable_generators(scores, synthetic)
    flagged = unusable_variants(unusable)
    rows = comparison_rows(results, minority)
    table = comparison_markdown(rows, minority, flagged)
    trainings = {g: read_json(args.metrics / "generators" / f"{g}.json") for g in experiment.generators}
    costs = variant_compute(results, trainings, syntheses)
    verdicts_table = verdicts_markdown(verdict_rows(results), flagged=flagged, costs=costs)
    recall_table = per_class_recall_markdown(results, counts["train"])
    class_names = list(counts["train"])
    counts_table = markdown_table(
        ["class", "before imbalance", "after imbalance", *(f"+ {g}" for g in synthetic)],
        [
            [
                c,
                str(counts["full"][c]),
                str(counts["train"][c]),
                *(str(counts["train"][c] + s[c]) for s in synthetic.values()),
            ]
            for c in class_names
        ],
    )
    generators_table = generator_markdown(scores, trainings, cas, real_full)
    per_class_table = per_class_generator_markdown(scores, class_names, cas)
    warnings = generator_notes(scores) + ([unusable_note(unusable)] if unusable else [])
    flagged_note = f" {unusable_note(unusable)}" if unusable else ""
    feature_note = (
        "Distances on the real test set, same class distribution, N images per side. Inception rows are FID at the "
        "dims shown; classifier-feature rows use the full-data classifier's penultimate features and are not "
        "comparable "
        f"to FID. CAS (Ravuri & Vinyals 2019): {cas_classifier} trained on the generator's evaluation images alone, "
        "accuracy on the real test set, beside the same classifier trained on the full real data. "
        "'Real classifier on generated': the full-data classifier's accuracy on the generated images."
    )
    params = load_params()
    judge = params["train"]["synthetic_filter"]["judge"]
    synthetic_filter = filter_note([r for r in results if r.variant.startswith("synthetic_")] or results, judge)
    # Cost per classifier (stage profile_model), gathered into one CSV.
    profiles = [read_json(args.metrics / "profile" / f"{c}.json") for c in experiment.classifiers]
    write_text(args.metrics / "model_profile.csv", rows_csv(profiles))
    profile_table = model_profile_markdown(profiles)
    # Sweeps collected with `synthaug sweep <key>` (committed CSVs; see README, Sweeps).
    commit, params_text = git_commit(), Path(PARAMS_FILE).read_text(encoding="utf-8")
    code, params_flat = code_digest(Path.cwd()), flat_params(params)
    this_run = (
        f"Made by this run: commit `{commit[:10]}`, code digest `{str(code)[:10]}`, "
        f"params.yaml sha256 `{hashlib.sha256(params_text.encode()).hexdigest()[:10]}`."
    )
    # A sweep table is made elsewhere (`synthaug sweep`): shown as current only if its code and params are this run's.
    sweeps, stale_sweeps = {}, {}
    for path in sorted((args.metrics / "sweeps").glob("*.csv")):
        collected = read_sweep_csv(path)
        provenance = read_json(provenance_file(path)) if provenance_file(path).is_file() else None
        if collected:
            why = sweep_staleness(provenance, code, params_flat)
            (sweeps if why is None else stale_sweeps)[path.stem] = (collected, why)

    with stage_run(run_name("report"), {"experiment": experiment.model_dump()}) as tracker:
        figures = {
            "recall_vs_count.png": (
                "Per-class test recall against training images",
                recall_vs_count_figure(results, counts["train"], synthetic),
            ),
            "confusion.png": ("Normalized test confusion matrices", confusions_figure(results, class_names)),
            "curves.png": ("Training curves", curves_figure(results)),
            "class_counts.png": (
                "Class counts before/after imbalance and rebalancing",
                class_counts_figure(counts, synthetic),
            ),
            **{
                f"sweep_{key}.png": (f"Sweep of {key}: test {rows[0]['metric']}", sweep_heatmap_figure(rows))
                for key, (rows, _) in sweeps.items()
            },
        }
        with atomic_path(args.out, directory=True) as folder:
            for name, (_, figure) in figures.items():
                save_figure(figure, folder / name)
        # Per generator: its training curves and samples (trained generators), then real-vs-synthetic previews.
        previews = {
            g: [
                args.metrics / "generators" / g / name
                for name in ("loss.png", "samples.png")
                if (args.metrics / "generators" / g / name).is_file()
            ]
            + sorted((args.metrics / "synthetic" / g).glob("*.png"))
            for g in experiment.generators
        }
        stale_note = (
            "**Not from this run** ({why}): shown for reference; its numbers may not hold for this code and params."
        )
        markdown = (
            "\n\n".join(
                [
                    f"# synthaug report ({experiment.preset} preset)",
                    f"## Comparison on the test split\n\n{table}\n\n_{this_run}_\n\n"
                    f"Minority classes: the {len(minority)} with the "
                    f"fewest imbalanced training images. {synthetic_filter}{flagged_note}",
                    f"## Verdicts\n\n{verdicts_table}\n\n_{this_run}_\n\n{VERDICT_NOTE}",
                    f"## Per-class test recall\n\n{recall_table}\n\n_{this_run}_\n\n"
                    f"Mean ± sample std over the seeds; classes with "
                    "the fewest imbalanced training images first.",
                    *(f"![{caption}]({args.out.name}/{name})" for name, (caption, _) in figures.items()),
                    "## Generators\n\n"
                    + "".join(f"{w}\n\n" for w in warnings)
                    + f"{generators_table}\n\n_{this_run}_\n\n{feature_note}\n\n"
                    f"### Per class\n\n{per_class_table}\n\n_{this_run}_",
                    f"## Data\n\n{counts_table}\n\n_{this_run}_",
                    f"## Model cost\n\n{profile_table}\n\n_{this_run}_",
                    *(
                        f"## Sweep {key}\n\n{sweep_markdown(rows)}\n\n_Made by `synthaug sweep` "
                        f"from experiments at this run's code "
                        "and params (the swept key aside)._"
                        for key, (rows, _) in sweeps.items()
                    ),
                    *(
                        f"## Sweep {key} (not from this run)\n\n{stale_note.format(why=why)}\n\n{sweep_markdown(rows)}"
                        for key, (rows, why) in stale_sweeps.items()
                    ),
                    *(
                        f"## Generator {g}\n\n"
                        + "\n".join(f"![{p.stem}]({p.relative_to(args.metrics).as_posix()})" for p in paths)
                        for g, paths in previews.items()
                    ),
                    f"## Provenance\n\ngit commit `{commit}`\n\n```yaml\n{params_text}```",
                ]
            )
            + "\n"
        )
        write_text(args.out.with_suffix(".md"), markdown)
        origin = f"<p><em>{html.escape(this_run.replace('`', ''))}</em></p>"
        sections = [
            (
                "Comparison on the test split",
                markdown_to_html_table(table)
                + origin
                + f"<p>Minority classes: {html.escape(', '.join(minority))}. {html.escape(synthetic_filter)}</p>"
                + (
                    f'<p class="warning">{html.escape(unusable_note(unusable).replace("**", ""))}</p>'
                    if unusable
                    else ""
                ),
            ),
            ("Verdicts", markdown_to_html_table(verdicts_table) + origin + f"<p>{html.escape(VERDICT_NOTE)}</p>"),
            ("Per-class test recall", markdown_to_html_table(recall_table) + origin),
            *((caption, embedded_image(args.out / name, caption)) for name, (caption, _) in figures.items()),
            (
                "Generators",
                "".join(f'<p class="warning">{html.escape(w.replace("**", ""))}</p>' for w in warnings)
                + markdown_to_html_table(generators_table)
                + origin
                + f"<p>{html.escape(feature_note)}</p>"
                + "<h3>Per class</h3>"
                + markdown_to_html_table(per_class_table)
                + origin,
            ),
            ("Data", markdown_to_html_table(counts_table) + origin),
            ("Model cost", markdown_to_html_table(profile_table) + origin),
            *(
                (
                    f"Sweep {key}",
                    markdown_to_html_table(sweep_markdown(rows))
                    + "<p><em>Made by synthaug sweep from experiments at this run's code and params.</em></p>",
                )
                for key, (rows, _) in sweeps.items()
            ),
            *(
                (
                    f"Sweep {key} (not from this run)",
                    f'<p class="warning">{html.escape(stale_note.format(why=why).replace("**", ""))}</p>'
                    + markdown_to_html_table(sweep_markdown(rows)),
                )
                for key, (rows, why) in stale_sweeps.items()
            ),
            *(
                (f"Generator {g}", "".join(embedded_image(p, preview_caption(g, p)) for p in paths))
                for g, paths in previews.items()
            ),
            (
                "Provenance",
                f"<p>git commit <code>{html.escape(commit)}</code></p><pre>{html.escape(params_text)}</pre>",
            ),
        ]
        write_text(args.out.with_suffix(".html"), html_page(f"synthaug report ({experiment.preset} preset)", sections))
        for path in (args.out.with_suffix(".md"), args.out.with_suffix(".html")):
            tracker.log_artifact(path)
        best = max(rows, key=lambda row: row["macro_f1"][0])
    return f"{len(rows)} variants; best macro-F1 {best['macro_f1'][0]:.4f} ({best['classifier']}-{best['variant']})"


if __name__ == "__main__":
    run_stage("report", main)
