"""SDXL-Turbo stage throughput at full size on a GPU, with random weights built from SDXL's configs.

The Hub is unreachable, so the UNet (2.6B parameters), VAE and both CLIP text encoders are built from
SDXL's published architecture with random weights (the cost of a step does not depend on the weights),
saved like a real pipeline, and loaded through the synthesize stage's own loader and backend
(SdxlTurboGenerator): 512x512, 1 step, fp16, batch 1/4/8, text-only and with a full-size canny
ControlNet (ControlNetModel.from_unet; the "small" ControlNet the params name is lighter), eager and with
the stage's `compile` option. The VAE decodes in fp16, as the fp16-fix VAE the params name does.
Prints a table and writes metrics/bench/sdxl_full.json.

    python bench/sdxl_full.py [--batch-sizes 1 4 8] [--images 32] [--modes eager compile]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from record import machine_info, save_bench
from synthaug.core.generator_params import SdxlTurboParams
from synthaug.generators.sdxl_turbo import SdxlTurboGenerator
from synthaug.synthetic.plan import plan_items
from synthaug.tools.tiny import _byte_level_tokenizer

# stabilityai/sdxl-turbo's architecture (same as SDXL 1.0 base).
UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20),
    cross_attention_dim=2048,
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)
VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    layers_per_block=2,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    sample_size=1024,
    scaling_factor=0.13025,
    force_upcast=False,  # as the fp16-fix VAE the params name: it decodes in fp16
)
CLIP_L = dict(
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    projection_dim=768,
    hidden_act="quick_gelu",
)
CLIP_BIG_G = dict(
    hidden_size=1280,
    intermediate_size=5120,
    num_hidden_layers=32,
    num_attention_heads=20,
    projection_dim=1280,
    hidden_act="gelu",
)


def build_full_size_sdxl(folder: Path) -> tuple[Path, Path]:
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        EulerAncestralDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    tokenizer = _byte_level_tokenizer(folder)
    common = dict(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        vocab_size=49408,
        max_position_embeddings=77,
        layer_norm_eps=1e-5,
    )
    with torch.device("cuda"):  # initialise on the GPU: minutes faster than 3.5B parameters on the CPU
        unet, vae = UNet2DConditionModel(**UNET), AutoencoderKL(**VAE)
        text_encoder = CLIPTextModel(CLIPTextConfig(**common, **CLIP_L))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**common, **CLIP_BIG_G))
        controlnet = ControlNetModel.from_unet(unet)
    scheduler = EulerAncestralDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="trailing"
    )
    pipeline = StableDiffusionXLPipeline(
        vae=vae,
        unet=unet,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        scheduler=scheduler,
    )
    pipeline.to(torch.float16).save_pretrained(folder / "pipeline")
    controlnet.to(torch.float16).save_pretrained(folder / "controlnet")
    return folder / "pipeline", folder / "controlnet"


def benchmark_params(
    model: Path, controlnet: Path | None, *, resolution: int, batch_size: int, device: str, compile: bool
) -> SdxlTurboParams:
    """The synthesize stage's SDXL-Turbo section for a saved random pipeline: 1 step, no guidance, its own VAE."""
    return SdxlTurboParams(
        model=str(model),
        model_revision=None,
        controlnet=None if controlnet is None else str(controlnet),
        controlnet_revision=None,
        vae=None,
        vae_revision=None,
        resolution=resolution,
        image_size=None,
        steps=1,
        guidance_scale=0.0,
        controlnet_conditioning_scale=0.5,
        canny_low=10,
        canny_high=20,
        img2img_strength=None,
        prompt_templates=["a photo of a {name}"],
        batch_size=batch_size,
        device=device,
        compile=compile,
        compile_vae=False,
        channels_last=False,
        fuse_qkv=False,
        vae_slicing=False,
        model_cpu_offload=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--modes", nargs="+", default=["eager", "compile"], choices=["eager", "compile"])
    parser.add_argument("--pipelines", nargs="+", default=["text", "controlnet"], choices=["text", "controlnet"])
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench/sdxl_full.py needs a CUDA GPU (a full-size SDXL UNet step is minutes on a CPU)")

    real = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    items = plan_items(
        np.arange(64), np.arange(64) % 2, ("cat", "dog"), np.array([args.images, 0]), ["a photo of a {name}"], seed=0
    )
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        model, controlnet = build_full_size_sdxl(Path(scratch))
        print(
            f"built and saved the random full-size SDXL + ControlNet in {time.perf_counter() - start:.0f}s", flush=True
        )
        for pipeline_kind in args.pipelines:
            for mode in args.modes:
                for batch_size in args.batch_sizes:
                    params = benchmark_params(
                        model,
                        controlnet if pipeline_kind == "controlnet" else None,
                        resolution=512,
                        batch_size=batch_size,
                        device="cuda",
                        compile=mode == "compile",
                    )
                    generator = SdxlTurboGenerator(params, real, 32, torch.device("cuda"))
                    warm = time.perf_counter()
                    generator(items[: 2 * batch_size])  # warm-up (compilation happens here)
                    warmup_seconds = time.perf_counter() - warm
                    torch.cuda.synchronize()
                    begin = time.perf_counter()
                    images = generator(items)
                    torch.cuda.synchronize()
                    seconds = time.perf_counter() - begin
                    assert images.shape == (len(items), 32, 32, 3)
                    rows.append(
                        {
                            "pipeline": f"sdxl-turbo{'+controlnet' if pipeline_kind == 'controlnet' else ''} (random "
                            "full-size)",
                            "mode": mode,
                            "resolution": 512,
                            "steps": 1,
                            "batch_size": batch_size,
                            "images": len(items),
                            "seconds": round(seconds, 3),
                            "images_per_second": round(len(items) / seconds, 2),
                            "warmup_seconds": round(warmup_seconds, 1),
                            "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                        }
                    )
                    print(
                        f"{rows[-1]['pipeline']:42s} {mode:8s} batch {batch_size}: "
                        f"{rows[-1]['images_per_second']:6.2f} images/s "
                        f"(warm-up {warmup_seconds:.0f}s)",
                        flush=True,
                    )
                    del generator
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                    save_bench(
                        "sdxl_full",
                        {
                            "machine": machine_info(),
                            "versions": {"torch": torch.__version__, "diffusers": __import__("diffusers").__version__},
                            "command": "python bench/sdxl_full.py "
                            + " ".join(
                                f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                                for k, v in vars(args).items()
                                if k != "out"
                            ),
                            "results": rows,
                        },
                    )


if __name__ == "__main__":
    main()
