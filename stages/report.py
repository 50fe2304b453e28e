"""DVC stage `report`: metrics/report.md and a self-contained metrics/report.html, plus their figures."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from synthaug.core.io import atomic_path, rows_csv, write_text
from synthaug.core.params import PARAMS_FILE, ExperimentParams, TrainParams, load_params, load_section
from synthaug.core.plots import save_figure
from synthaug.core.provenance import code_digest, flat_params, git_commit
from synthaug.core.runner import run_stage
from synthaug.core.tracking import run_name, stage_run
from synthaug.report.document import to_html, to_markdown
from synthaug.report.inputs import load_report_inputs
from synthaug.report.sections import pipeline_headline, report_figures, report_sections
from synthaug.report.summaries import comparison_rows


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", type=Path, required=True, help="the pipeline's metrics folder")
    parser.add_argument("--out", type=Path, required=True, help="report path without suffix (.md, .html, figures/)")
    args = parser.parse_args()
    experiment = load_section("experiment", ExperimentParams)
    # The whole params file: printed in the report, its digest recorded, compared with each sweep's.
    params = load_params()
    commit, params_text, code = git_commit(), Path(PARAMS_FILE).read_text(encoding="utf-8"), code_digest(Path.cwd())
    this_run = (
        f"Made by this run: commit `{commit[:10]}`, code digest `{str(code)[:10]}`, "
        f"params.yaml sha256 `{hashlib.sha256(params_text.encode()).hexdigest()[:10]}`."
    )
    train = load_section("train", TrainParams)
    inputs = load_report_inputs(
        args.metrics, experiment, train.synthetic_filter.judge, train.select, code, flat_params(params)
    )

    with stage_run(run_name("report"), {"experiment": experiment.model_dump()}) as tracker:
        write_text(args.metrics / "model_profile.csv", rows_csv(inputs.profiles))
        figures = report_figures(inputs)
        with atomic_path(args.out, directory=True) as folder:
            for name, (_, figure) in figures.items():
                save_figure(figure, folder / name)
        written = {name: (caption, args.out / name) for name, (caption, _) in figures.items()}
        sections = report_sections(inputs, written, args.metrics, this_run, commit, params_text)
        title = f"synthaug report ({experiment.preset} preset)"
        write_text(args.out.with_suffix(".md"), to_markdown(title, sections, args.out.parent))
        write_text(args.out.with_suffix(".html"), to_html(title, sections))
        for path in (args.out.with_suffix(".md"), args.out.with_suffix(".html")):
            tracker.log_artifact(path)
        metrics, tags = pipeline_headline(inputs)
        tracker.log_to_pipeline_run(metrics, tags, [args.out.with_suffix(".html")])
    rows = comparison_rows(inputs.results, inputs.minority)
    best = max(rows, key=lambda row: row["macro_f1"][0])
    return f"{len(rows)} variants; best macro-F1 {best['macro_f1'][0]:.4f} ({best['classifier']}-{best['variant']})"


if __name__ == "__main__":
    run_stage("report", main, exit_process=True)
