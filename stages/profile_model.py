"""DVC stage `profile_model`: one classifier's cost (parameters, FLOPs, latency, throughput, peak memory), and a
torch.profiler chrome trace of `profile_model.steps` training steps."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthaug.core.devices import resolve_device
from synthaug.core.io import atomic_path, write_json
from synthaug.core.params import ProfileModelParams, load_section
from synthaug.core.runner import run_stage
from synthaug.core.seeding import seed_everything
from synthaug.core.tracking import run_name, stage_run
from synthaug.models.checkpoint import load_classifier
from synthaug.pipeline.profile_model import profile_classifier, trace_training_steps

TRACE_FILE = "trace.json"


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
    device = resolve_device(params.device, "profile_model.device")
    seed_everything(0)

    model, spec = load_classifier(args.model)
    name = run_name("profile_model", args.classifier)
    with stage_run(name, {"profile_model": params.model_dump()}, {"classifier": args.classifier}) as tracker:
        profile = profile_classifier(model, spec, device, params.batch_size, params.warmup, params.repeats)
        with atomic_path(args.traces, directory=True) as tmp:
            # Never an empty folder: DVC warns about those and does not restore them.
            (tmp / "README.txt").write_text(
                f"{TRACE_FILE}: torch.profiler chrome trace of profile_model.steps={params.steps} training steps of "
                f"{args.classifier} "
                "(none when 0). Open it in https://ui.perfetto.dev or chrome://tracing.\n",
                encoding="utf-8",
            )
            if params.steps > 0:
                trace_training_steps(model, spec, device, params.batch_size, params.steps, tmp / TRACE_FILE)
        write_json(args.out, profile.to_dict())
        tracker.log_metrics({k: v for k, v in profile.to_dict().items() if isinstance(v, (int, float))})
        tracker.log_artifact(args.out)
        if params.steps > 0:
            tracker.log_artifact(args.traces / TRACE_FILE)
    trace = f", trace of {params.steps} steps in {args.traces / TRACE_FILE}" if params.steps > 0 else ""
    return (
        f"{name}: {profile.parameters:,} parameters, {profile.macs_per_image / 1e6:.1f} MMACs/image, "
        f"{profile.latency_ms:.2f} ms/image, {profile.throughput_images_per_s:.0f} images/s on {device.type}{trace}"
    )


if __name__ == "__main__":
    run_stage("profile_model", main, exit_process=True)
