"""DVC stage `report`: metrics/report.md and a self-contained metrics/report.html, plus their figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthaug.core.param_rules import load_section
from synthaug.core.params import ExperimentParams, TrainParams
from synthaug.core.runner import run_stage
from synthaug.pipeline.report import write_report


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", type=Path, required=True, help="the pipeline's metrics folder")
    parser.add_argument("--out", type=Path, required=True, help="report path without suffix (.md, .html, figures/)")
    args = parser.parse_args()
    experiment = load_section("experiment", ExperimentParams)
    return write_report(experiment, load_section("train", TrainParams), args.metrics, args.out)


if __name__ == "__main__":
    run_stage("report", main, exit_process=True)
