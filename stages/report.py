"""DVC stage `report`: metrics/report.md and a self-contained metrics/report.html, plus their figures."""

from __future__ import annotations

import argparse
import html
from pathlib import Path

from synthaug.cli import run_stage
from synthaug.io import atomic_path, read_json, rows_csv, write_text
from synthaug.metrics.plots import save_figure
from synthaug.metrics.report import (
    class_counts_figure,
    comparison_markdown,
    comparison_rows,
    confusions_figure,
    curves_figure,
    embedded_image,
    generator_markdown,
    html_page,
    load_entry_result,
    markdown_table,
    markdown_to_html_table,
    minority_classes,
    model_profile_markdown,
    per_class_generator_markdown,
    recall_vs_count_figure,
    sweep_heatmap_figure,
    sweep_markdown,
)
from synthaug.metrics.sweeps import read_sweep_csv
from synthaug.params import PARAMS_FILE, ExperimentParams, load_section
from synthaug.tracking import git_commit, run_name, stage_run


def preview_caption(generator: str, path: Path) -> str:
    if path.name == "loss.png":
        return f"{generator}: training losses"
    if path.name == "samples.png":
        return f"{generator}: samples at the end of training, one row per class"
    return f"{generator}: {path.stem} (top row real)"


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", type=Path, required=True, help="the pipeline's metrics folder")
    parser.add_argument("--out", type=Path, required=True, help="report path without suffix (.md, .html, and a figures folder)")
    args = parser.parse_args()
    experiment = load_section("experiment", ExperimentParams)

    variants = [*experiment.variants, *(f"synthetic_{g}" for g in experiment.generators)]
    results = [
        load_entry_result(args.metrics, classifier, variant, seed)
        for classifier in experiment.classifiers for variant in variants for seed in experiment.seeds
    ]
    counts = read_json(args.metrics / "class_counts.json")["counts"]
    synthetic = {g: read_json(args.metrics / "synthetic" / f"{g}.json")["synthetic_per_class"] for g in experiment.generators}
    minority = minority_classes(counts["train"])
    rows = comparison_rows(results, minority)
    table = comparison_markdown(rows, minority)
    class_names = list(counts["train"])
    counts_table = markdown_table(
        ["class", "before imbalance", "after imbalance", *(f"+ {g}" for g in synthetic)],
        [[c, str(counts["full"][c]), str(counts["train"][c]), *(str(counts["train"][c] + s[c]) for s in synthetic.values())] for c in class_names],
    )
    scores = {g: read_json(args.metrics / "fid" / f"{g}.json") for g in experiment.generators}
    trainings = {g: read_json(args.metrics / "generators" / f"{g}.json") for g in experiment.generators}
    generators_table = generator_markdown(scores, trainings)
    per_class_table = per_class_generator_markdown(scores, class_names)
    feature_note = (
        "Distances on the real test set, same class distribution. Inception rows are FID; "
        "classifier-feature rows use the full-data classifier's penultimate features and are not comparable to FID."
    )
    # Cost per classifier (stage profile), gathered into one CSV.
    profiles = [read_json(args.metrics / "profile" / f"{c}.json") for c in experiment.classifiers]
    write_text(args.metrics / "model_profile.csv", rows_csv(profiles))
    profile_table = model_profile_markdown(profiles)
    # Sweeps collected with `synthaug sweep <key>` (committed CSVs; see README, Sweeps).
    sweeps = {path.stem: read_sweep_csv(path) for path in sorted((args.metrics / "sweeps").glob("*.csv"))}
    sweeps = {key: rows for key, rows in sweeps.items() if rows}
    commit, params_text = git_commit(), Path(PARAMS_FILE).read_text(encoding="utf-8")

    with stage_run(run_name("report"), {"experiment": experiment.model_dump()}) as tracker:
        figures = {
            "recall_vs_count.png": ("Per-class test recall against training images", recall_vs_count_figure(results, counts["train"], synthetic)),
            "confusion.png": ("Normalized test confusion matrices", confusions_figure(results, class_names)),
            "curves.png": ("Training curves", curves_figure(results)),
            "class_counts.png": ("Class counts before/after imbalance and rebalancing", class_counts_figure(counts, synthetic)),
            **{f"sweep_{key}.png": (f"Sweep of {key}: test {rows[0]['metric']}", sweep_heatmap_figure(rows)) for key, rows in sweeps.items()},
        }
        with atomic_path(args.out, directory=True) as folder:
            for name, (_, figure) in figures.items():
                save_figure(figure, folder / name)
        # Per generator: its training curves and samples (trained generators), then real-vs-synthetic previews.
        previews = {
            g: [args.metrics / "generators" / g / name for name in ("loss.png", "samples.png") if (args.metrics / "generators" / g / name).is_file()]
            + sorted((args.metrics / "synthetic" / g).glob("*.png"))
            for g in experiment.generators
        }
        markdown = "\n\n".join([
            f"# synthaug report ({experiment.profile} profile)",
            f"## Comparison on the test split\n\n{table}\n\nMinority classes: the {len(minority)} with the fewest imbalanced training images.",
            *(f"![{caption}]({args.out.name}/{name})" for name, (caption, _) in figures.items()),
            f"## Generators\n\n{generators_table}\n\n{feature_note}\n\n### Per class\n\n{per_class_table}",
            f"## Data\n\n{counts_table}",
            f"## Model cost\n\n{profile_table}",
            *(f"## Sweep {key}\n\n{sweep_markdown(rows)}" for key, rows in sweeps.items()),
            *(f"## Generator {g}\n\n" + "\n".join(f"![{p.stem}]({p.relative_to(args.metrics).as_posix()})" for p in paths) for g, paths in previews.items()),
            f"## Provenance\n\ngit commit `{commit}`\n\n```yaml\n{params_text}```",
        ]) + "\n"
        write_text(args.out.with_suffix(".md"), markdown)
        sections = [
            ("Comparison on the test split", markdown_to_html_table(table) + f"<p>Minority classes: {html.escape(', '.join(minority))}.</p>"),
            *((caption, embedded_image(args.out / name, caption)) for name, (caption, _) in figures.items()),
            ("Generators", markdown_to_html_table(generators_table) + f"<p>{html.escape(feature_note)}</p>"
             + "<h3>Per class</h3>" + markdown_to_html_table(per_class_table)),
            ("Data", markdown_to_html_table(counts_table)),
            ("Model cost", markdown_to_html_table(profile_table)),
            *((f"Sweep {key}", markdown_to_html_table(sweep_markdown(rows))) for key, rows in sweeps.items()),
            *((f"Generator {g}", "".join(embedded_image(p, preview_caption(g, p)) for p in paths)) for g, paths in previews.items()),
            ("Provenance", f"<p>git commit <code>{html.escape(commit)}</code></p><pre>{html.escape(params_text)}</pre>"),
        ]
        write_text(args.out.with_suffix(".html"), html_page(f"synthaug report ({experiment.profile} profile)", sections))
        for path in (args.out.with_suffix(".md"), args.out.with_suffix(".html")):
            tracker.log_artifact(path)
        best = max(rows, key=lambda row: row["macro_f1"][0])
    return f"{len(rows)} variants; best macro-F1 {best['macro_f1'][0]:.4f} ({best['classifier']}-{best['variant']})"


if __name__ == "__main__":
    run_stage("report", main)
