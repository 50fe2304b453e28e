"""Throughput of the DDPM sampler (DdpmSampler) on this machine, by batch size.

Builds the study preset's UNet (random weights: the time does not depend on them), or loads a trained one
(`--model`, a train_generator run folder such as models/generators/ddpm/shared), and samples the same labels and
seeds at each batch size with the study's sampler, steps and guidance, in interleaved rounds (the fastest round
counts: this machine's speed drifts). Prints a table and writes metrics/bench/ddpm_sampling.json.

    python bench/ddpm_sampling.py [--images 256] [--rounds 2] [--batch-sizes 256 128 64 32] [--model FOLDER]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from record import machine_info, save_bench
from synthaug.core.generator_params import DdpmTrainParams, SynthesizeParams
from synthaug.core.param_rules import parse_section
from synthaug.generators.ddpm import DdpmSampler, build_noise_scheduler, build_unet
from synthaug.tools.compose import compose_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 128, 64, 32])
    parser.add_argument("--model", type=Path, default=None, help="a trained DDPM run folder (default: random UNet)")
    args = parser.parse_args()

    params = compose_params("conf", ["preset=study"])
    train = parse_section("train_generator.ddpm", params["train_generator"]["ddpm"], DdpmTrainParams)
    study_sample = parse_section("synthesize", params["synthesize"], SynthesizeParams).ddpm
    if args.model is None:
        torch.manual_seed(0)
        unet, scheduler_config = build_unet(train, 32, 10), build_noise_scheduler(train).config
    else:
        trained = DdpmSampler.load(args.model, 10, study_sample, torch.device("cpu"))
        unet, scheduler_config = trained.unet, trained.scheduler_config
    labels = np.arange(args.images) % 10
    seeds = list(range(args.images))
    best: dict[int, float] = {}
    for round_index in range(args.rounds):
        for batch_size in args.batch_sizes:
            sample = study_sample.model_copy(update={"batch_size": batch_size, "device": "cpu"})
            sampler = DdpmSampler(unet, scheduler_config, 10, sample, torch.device("cpu"))
            start = time.perf_counter()
            sampler(labels, seeds)
            seconds = time.perf_counter() - start
            best[batch_size] = min(best.get(batch_size, seconds), seconds)
            print(f"round {round_index} batch {batch_size:4d}: {args.images / seconds:6.2f} images/s")
    rows = [
        {
            "batch_size": batch_size,
            "images": args.images,
            "seconds": round(seconds, 3),
            "images_per_second": round(args.images / seconds, 2),
        }
        for batch_size, seconds in best.items()
    ]
    for row in rows:
        print(f"batch {row['batch_size']:4d}: {row['images_per_second']:6.2f} images/s (fastest of {args.rounds})")
    save_bench(
        "ddpm_sampling",
        {
            "machine": machine_info(),
            "sampler": study_sample.model_dump(include={"sampler", "steps", "guidance_scale"}),
            "unet": {k: params["train_generator"]["ddpm"][k] for k in ("block_out_channels", "layers_per_block")},
            "weights": str(args.model) if args.model else "random",
            "command": "python bench/ddpm_sampling.py "
            + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
            "results": rows,
        },
    )


if __name__ == "__main__":
    main()
