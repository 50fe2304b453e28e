"""The report stage: metrics/report.md and a self-contained report.html, their figures, and the pipeline's
headline in MLflow."""

from __future__ import annotations

import hashlib
from pathlib import Path

from synthaug.core.io import atomic_path, rows_csv, write_text
from synthaug.core.param_rules import PARAMS_FILE, load_params
from synthaug.core.params import ExperimentParams, TrainParams
from synthaug.core.plots import save_figure
from synthaug.core.provenance import code_digest, flat_params, git_commit
from synthaug.core.tracking import run_name, stage_run
from synthaug.report.document import to_html, to_markdown
from synthaug.report.inputs import load_report_inputs
from synthaug.report.sections import pipeline_headline, report_figures, report_sections
from synthaug.report.summaries import comparison_rows


def write_report(experiment: ExperimentParams, train: TrainParams, metrics: Path, out: Path) -> str:
    """The report from the stage outputs under `metrics`, written to `out` (.md, .html, figures in out/)."""
    # The whole params file: listed in the report, its digest recorded, compared with each sweep's.
    params = load_params()
    commit, params_text, code = git_commit(), Path(PARAMS_FILE).read_text(encoding="utf-8"), code_digest(Path.cwd())
    this_run = (
        f"Made by this run: commit `{commit[:10]}`, code digest `{str(code)[:10]}`, "
        f"params.yaml sha256 `{hashlib.sha256(params_text.encode()).hexdigest()[:10]}`."
    )
    inputs = load_report_inputs(metrics, experiment, train, code, flat_params(params))
    with stage_run(run_name("report"), {"experiment": experiment.model_dump()}) as tracker:
        write_text(metrics / "model_profile.csv", rows_csv(inputs.profiles))
        figures = report_figures(inputs)
        with atomic_path(out, directory=True) as folder:
            for name, (_, figure) in figures.items():
                save_figure(figure, folder / name)
        written = {name: (caption, out / name) for name, (caption, _) in figures.items()}
        sections = report_sections(inputs, written, metrics, commit, params_text)
        title = f"synthaug report ({experiment.preset} preset)"
        write_text(out.with_suffix(".md"), to_markdown(title, sections, out.parent, this_run))
        write_text(out.with_suffix(".html"), to_html(title, sections, this_run))
        for path in (out.with_suffix(".md"), out.with_suffix(".html")):
            tracker.log_artifact(path)
        headline, tags = pipeline_headline(inputs)
        tracker.log_to_pipeline_run(headline, tags, [out.with_suffix(".html")])
    rows = comparison_rows(inputs.results, inputs.minority)
    best = max(rows, key=lambda row: row["macro_f1"][0])
    return f"{len(rows)} variants; best macro-F1 {best['macro_f1'][0]:.4f} ({best['classifier']}-{best['variant']})"
