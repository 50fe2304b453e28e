"""A tiny, randomly initialized SDXL pipeline and canny ControlNet, built from configs, saved like real ones.

Used by the tests and by `dvc exp run -S sdxl=tiny` to run the real synthesize code path on a CPU with
no downloads: `python -m synthaug.tools.tiny models/tiny-sdxl` writes `pipeline/` and `controlnet/`.
The images are noise; the shapes, dtypes, files and code path are those of SDXL-Turbo.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from synthaug.core.io import atomic_path

# Shared by the UNet and the ControlNet: the cross-attention width is the two text encoders' widths summed,
# and the added-conditioning input is 6 time ids x 8 + the pooled projection (32).
_TEXT_WIDTH = 32
_BLOCKS = dict(
    block_out_channels=(32, 64),
    layers_per_block=1,
    in_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    attention_head_dim=(2, 4),
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=8,
    transformer_layers_per_block=(1, 1),
    projection_class_embeddings_input_dim=6 * 8 + _TEXT_WIDTH,
    cross_attention_dim=2 * _TEXT_WIDTH,
)


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP byte-level BPE alphabet: printable bytes map to themselves, the rest above U+0100."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


def _byte_level_tokenizer(folder: Path):
    """A CLIP tokenizer over single byte-level symbols (no merges): a valid vocab with no download."""
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in _byte_symbols():
        for token in (symbol, f"{symbol}</w>"):
            vocab.setdefault(token, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def build_tiny_sdxl(out: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """Write a tiny SDXL pipeline to out/pipeline and a matching canny ControlNet to out/controlnet."""
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        EulerAncestralDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = _byte_level_tokenizer(Path(scratch))
    text_config = CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=_TEXT_WIDTH,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=len(tokenizer),
        projection_dim=_TEXT_WIDTH,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
    )
    unet = UNet2DConditionModel(
        **_BLOCKS, sample_size=32, out_channels=4, up_block_types=("CrossAttnUpBlock2D", "UpBlock2D")
    )
    controlnet = ControlNetModel(**_BLOCKS, conditioning_embedding_out_channels=(16, 32))
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
    )
    # SDXL-Turbo's scheduler settings: Euler ancestral with trailing timesteps for 1-4 steps.
    scheduler = EulerAncestralDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="trailing"
    )
    pipeline = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(text_config),
        text_encoder_2=CLIPTextModelWithProjection(text_config),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=scheduler,
    )
    out = Path(out)
    with atomic_path(out, directory=True) as tmp:
        pipeline.save_pretrained(tmp / "pipeline")  # type: ignore[attr-defined]  # diffusers' mixins, untyped
        controlnet.save_pretrained(tmp / "controlnet")  # type: ignore[attr-defined]
    return out / "pipeline", out / "controlnet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write (pipeline/ and controlnet/ inside)")
    args = parser.parse_args()
    pipeline, controlnet = build_tiny_sdxl(args.out)
    print(f"wrote {pipeline} and {controlnet}")


if __name__ == "__main__":
    main()
