"""DVC stage `profile_model`: one classifier's cost (parameters, FLOPs, latency, throughput, peak memory), and a
torch.profiler chrome trace of `profile_model.steps` training steps."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthaug.core.param_rules import load_section
from synthaug.core.params import ProfileModelParams
from synthaug.core.runner import run_stage
from synthaug.pipeline.profile_model import profile_model


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--classifier", required=True, help="experiment.classifiers entry")
    parser.add_argument("--model", type=Path, required=True, help="a checkpoint folder of this classifier (its spec)")
    parser.add_argument("--out", type=Path, required=True, help="the profile (.json)")
    parser.add_argument(
        "--traces", type=Path, required=True, help="folder for trace.json (empty when profile_model.steps is 0)"
    )
    args = parser.parse_args()
    params = load_section("profile_model", ProfileModelParams)
    return profile_model(params, args.classifier, args.model, args.out, args.traces)


if __name__ == "__main__":
    run_stage("profile_model", main, exit_process=True)
