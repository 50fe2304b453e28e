"""What a first run with real SDXL-Turbo weights meets: the device, the files loaded, the download, broken images,
the params' rules and one pipeline per stage. Tiny random models saved the way the Hub lays them out stand in."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from synthaug.core import devices
from synthaug.core.errors import BrokenImages, ModelLoadError, ParamsError
from synthaug.generators import sdxl_turbo
from synthaug.generators.sdxl_turbo import SdxlTurboGenerator, load_pipeline, pick_device, shared_pipeline
from synthaug.generators.weights import (
    CONFIG_PATTERNS,
    FP16_PATTERNS,
    download_advice,
    matches,
    resolve_weights,
)
from synthaug.synthetic.plan import plan_items

from ..conftest import ROOT
from .conftest import with_backend
from .fake_hub import COMMIT, serve

CPU = torch.device("cpu")


def real_images() -> np.ndarray:
    images = np.zeros((8, 32, 32, 3), np.uint8)
    images[:, 8:24, 8:24] = np.random.default_rng(0).integers(100, 255, (8, 1, 1, 3), dtype=np.uint8)
    return images


def items(counts: tuple[int, int] = (3, 2)):
    return plan_items(np.arange(8), np.repeat(np.arange(2), 4), ("cat", "dog"), np.array(counts), ["a {name}"], 1)


@pytest.fixture(scope="module")
def hub_layout(tiny_sdxl, tmp_path_factory) -> Path:
    """Repositories as the Hub holds them: fp32 and fp16 safetensors, pickled copies and a single-file checkpoint."""
    from diffusers import ControlNetModel, StableDiffusionXLPipeline

    root = tmp_path_factory.mktemp("hub")
    pipeline = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl[0])
    controlnet = ControlNetModel.from_pretrained(tiny_sdxl[1])
    for variant in (None, "fp16"):
        pipeline.save_pretrained(root / "sdxl", variant=variant)
        controlnet.save_pretrained(root / "controlnet", variant=variant)
    pipeline.save_pretrained(root / "sdxl", safe_serialization=False)  # .bin files beside
    (root / "sdxl/sd_xl_turbo_1.0_fp16.safetensors").write_bytes(b"single-file checkpoint")
    return root


def fp16_only(hub_layout: Path, out: Path) -> Path:
    """The files `hf download --include <the advice's patterns>` keeps of the sdxl repository."""
    patterns = [*CONFIG_PATTERNS, *FP16_PATTERNS]
    for file in (hub_layout / "sdxl").rglob("*"):
        name = file.relative_to(hub_layout / "sdxl").as_posix()
        if file.is_file() and matches(name, patterns):
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, out / name)
    return out


# --- device truth ---------------------------------------------------------------------------------------------


@pytest.fixture
def no_cuda(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "NVIDIA_VERSION_FILE", tmp_path / "absent")
    monkeypatch.setattr(devices, "NVIDIA_DEVICE_GLOB", str(tmp_path / "nvidia[0-9]*"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no nvidia-smi
    return tmp_path


def test_auto_on_a_gpu_torch_cannot_use_stops_naming_the_driver_and_cuda(no_cuda, monkeypatch):
    smi = no_cuda / "bin/nvidia-smi"
    smi.parent.mkdir()
    smi.write_text("#!/bin/sh\necho 535.104.05\n")
    smi.chmod(0o755)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    with pytest.raises(ModelLoadError) as error:
        devices.resolve_device("auto", "train.device")
    message = str(error.value)
    assert "train.device=auto" in message and "driver 535.104.05" in message
    assert "CUDA 13.0 needs driver 580.65.06 or newer" in message and "train.device=cpu" in message
    assert "\n" not in message
    assert devices.resolve_device("cpu", "train.device") == CPU  # named explicitly: no question asked


def test_the_driver_version_is_read_from_the_kernel_module_or_a_device_node(no_cuda, monkeypatch):
    assert devices.resolve_device("auto", "train.device") == CPU  # no NVIDIA hardware at all
    version = no_cuda / "version"
    version.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n")
    monkeypatch.setattr(devices, "NVIDIA_VERSION_FILE", version)
    assert devices.nvidia_driver_version() == "550.54.14"
    version.unlink()
    (no_cuda / "nvidia0").touch()
    assert devices.nvidia_driver_version() == "unknown"
    with pytest.raises(ModelLoadError, match=r"synthesize\.ddpm\.device=cuda: an NVIDIA GPU is present"):
        devices.resolve_device("cuda", "synthesize.ddpm.device")


def full_size_unet(folder: Path) -> Path:
    """A folder whose unet/config.json is SDXL's (no weights: only the parameter count is read)."""
    (folder / "unet").mkdir(parents=True)
    config = {
        "_class_name": "UNet2DConditionModel",
        "block_out_channels": [320, 640, 1280],
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "transformer_layers_per_block": [1, 2, 10],
        "attention_head_dim": [5, 10, 20],
        "cross_attention_dim": 2048,
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2816,
        "sample_size": 128,
    }
    (folder / "unet/config.json").write_text(json.dumps(config))
    (folder / "unet/diffusion_pytorch_model.fp16.safetensors").write_bytes(b"")
    return folder


def test_auto_refuses_full_size_sdxl_on_the_cpu_but_cpu_named_runs_it(tiny_synth_params, tiny_sdxl, no_cuda):
    big = resolve_weights(str(full_size_unet(no_cuda / "big")), None, "synthesize.sdxl_turbo.model")
    auto = with_backend(tiny_synth_params, device="auto")
    with pytest.raises(ModelLoadError, match=r"UNet has 2\.6 B parameters.*set synthesize\.sdxl_turbo\.device=cpu"):
        pick_device(auto, big)
    assert pick_device(with_backend(tiny_synth_params, device="cpu"), big) == CPU
    tiny = resolve_weights(str(tiny_sdxl[0]), None, "synthesize.sdxl_turbo.model")
    assert pick_device(auto, tiny) == CPU


# --- loading as diffusers documents it --------------------------------------------------------------------------


def test_an_fp16_only_folder_loads_cast_up_on_the_cpu_without_a_watermarker(
    tiny_synth_params, hub_layout, tmp_path, monkeypatch
):
    from diffusers.pipelines.controlnet import pipeline_controlnet_sd_xl

    # as if invisible-watermark were installed: diffusers would then watermark every image unless told not to
    monkeypatch.setattr(pipeline_controlnet_sd_xl, "is_invisible_watermark_available", lambda: True)
    monkeypatch.setattr(pipeline_controlnet_sd_xl, "StableDiffusionXLWatermarker", object, raising=False)
    folder = fp16_only(hub_layout, tmp_path / "sdxl")
    params = with_backend(tiny_synth_params, model=str(folder), controlnet=str(hub_layout / "controlnet"))
    weights = sdxl_turbo.model_weights(params)
    assert {role: w.variant for role, w in weights.items()} == {"model": "fp16", "controlnet": "fp16"}
    pipeline = load_pipeline(params, CPU, weights)
    assert pipeline.unet.dtype == torch.float32 and pipeline.controlnet.dtype == torch.float32
    assert pipeline.watermark is None
    plain = sdxl_turbo.model_weights(tiny_synth_params.sdxl_turbo)["model"]
    assert plain.variant is None and plain.provenance()["variant"] == "full precision"


def test_pickled_weights_are_never_loaded(tiny_synth_params, tiny_sdxl, tmp_path):
    from diffusers import ControlNetModel

    ControlNetModel.from_pretrained(tiny_sdxl[1]).save_pretrained(tmp_path / "cn", safe_serialization=False)
    with pytest.raises(ModelLoadError, match=r"controlnet=.*holds no safetensors weights \(only pickled ones"):
        sdxl_turbo.model_weights(with_backend(tiny_synth_params, controlnet=str(tmp_path / "cn")))


def test_a_broken_file_names_the_folder_and_the_real_cause(tiny_synth_params, tiny_sdxl, tmp_path):
    shutil.copytree(tiny_sdxl[1], tmp_path / "cn")
    weights = tmp_path / "cn/diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a download cut short
    params = with_backend(tiny_synth_params, controlnet=str(tmp_path / "cn"))
    with pytest.raises(ModelLoadError) as error:
        load_pipeline(params, CPU)
    message = str(error.value)
    assert message.startswith(f"cannot load synthesize.sdxl_turbo.controlnet={tmp_path / 'cn'} from ")
    assert "Hub" not in message and "download" not in message
    assert error.value.__cause__ is not None


def test_offline_a_hub_id_gets_a_download_command_that_exists(tiny_synth_params, monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    params = with_backend(tiny_synth_params, controlnet="diffusers/controlnet-canny-sdxl-1.0-small")
    with pytest.raises(ModelLoadError) as error:
        sdxl_turbo.model_weights(params)
    message = str(error.value)
    assert "controlnet=diffusers/controlnet-canny-sdxl-1.0-small: not downloaded here" in message
    assert "hf download diffusers/controlnet-canny-sdxl-1.0-small --include '*.json' '*.txt'" in message
    assert "synthaug download DIR" in message and "set synthesize.sdxl_turbo.controlnet=DIR" in message
    assert error.value.__cause__ is not None
    with pytest.raises(ModelLoadError, match=r"model=models/missing/pipeline: no such folder"):
        sdxl_turbo.model_weights(with_backend(tiny_synth_params, model="models/missing/pipeline"))


def test_the_advised_command_exists_and_its_patterns_fetch_only_the_fp16_files(hub_layout):
    hf = Path(sys.executable).parent / "hf"
    shown = subprocess.run([hf, "download", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--include" in shown and "--local-dir" in shown and "--revision" in shown
    advice = download_advice("org/sdxl", "abc", "synthesize.sdxl_turbo.model")
    assert "--revision abc" in advice
    patterns = [p.strip("'") for p in advice.split("--include ")[1].split(" --local-dir")[0].split()]
    files = [p.relative_to(hub_layout / "sdxl").as_posix() for p in (hub_layout / "sdxl").rglob("*") if p.is_file()]
    kept = {name for name in files if matches(name, patterns)}
    weights = {name for name in kept if not name.endswith((".json", ".txt"))}
    assert weights == {
        f"{part}.fp16.safetensors"
        for part in (
            "unet/diffusion_pytorch_model",
            "vae/diffusion_pytorch_model",
            "text_encoder/model",
            "text_encoder_2/model",
        )
    }
    assert "model_index.json" in kept and "tokenizer/tokenizer.json" in kept and "unet/config.json" in kept


def test_synthaug_download_fetches_the_fp16_files_and_points_the_clone_at_them(
    tiny_synth_params, hub_layout, tmp_path, monkeypatch
):
    from synthaug.tools.cli import download_main

    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    repos = {"org/sdxl": hub_layout / "sdxl", "org/controlnet": hub_layout / "controlnet"}
    with serve(repos) as (endpoint, hub):
        summary = download_main(
            [
                str(tmp_path / "models"),
                "synthesize.sdxl_turbo.model=org/sdxl",
                "synthesize.sdxl_turbo.controlnet=org/controlnet",
                "synthesize.sdxl_turbo.vae=null",
                f"--conf={conf}",
                f"--endpoint={endpoint}",
            ]
        )
    fetched = [path.removeprefix("/org/sdxl/resolve/" + COMMIT + "/") for path in hub.requested if "/resolve/" in path]
    assert not [name for name in fetched if name.endswith((".bin",)) or name.startswith("sd_xl_turbo")]
    assert not [name for name in fetched if name.endswith(".safetensors") and ".fp16" not in name]
    assert "2 model(s)" in summary
    settings = yaml.safe_load((conf / "local/settings.yaml").read_text())["synthesize"]["sdxl_turbo"]
    assert settings["model"] == str(tmp_path / "models/model") and settings["model_revision"] == COMMIT
    params = with_backend(tiny_synth_params, model=settings["model"], controlnet=settings["controlnet"])
    weights = sdxl_turbo.model_weights(params)
    assert {role: (w.commit, w.variant) for role, w in weights.items()} == {
        "model": (COMMIT, "fp16"),
        "controlnet": (COMMIT, "fp16"),
    }
    other = "f" * 40
    with pytest.raises(ModelLoadError, match=f"files are of commit {COMMIT}, the params pin {other}"):
        sdxl_turbo.model_weights(params.model_copy(update={"model_revision": other}))


# --- images that are images -------------------------------------------------------------------------------------


def test_a_vae_that_returns_nan_fails_naming_the_class_and_count(tiny_synth_params, monkeypatch):
    generator = SdxlTurboGenerator(tiny_synth_params.sdxl_turbo, real_images(), 32, CPU)
    vae = generator.pipeline.vae
    decode = vae.decode

    def nan_decode(latents, *args, **kwargs):
        out = decode(latents, *args, **kwargs)
        (out[0] if isinstance(out, tuple) else out.sample)[0] = float("nan")  # the first image of each batch
        return out

    def grey_decode(latents, *args, **kwargs):
        out = decode(latents, *args, **kwargs)
        (out[0] if isinstance(out, tuple) else out.sample)[:] = 0.0
        return out

    monkeypatch.setattr(vae, "decode", nan_decode)
    with pytest.raises(
        BrokenImages, match=r"^1 image\(s\) of class cat are non-finite \(NaN or inf\), in a batch of 3 \(in fp16"
    ):
        generator(items())
    monkeypatch.setattr(vae, "decode", grey_decode)
    with pytest.raises(BrokenImages, match=r"^3 image\(s\) of class cat are constant, in a batch of 3$"):
        generator(items())


# --- rules, not comments ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("assignments", "problem"),
    [
        (["synthesize.sdxl_turbo.steps=1", "synthesize.sdxl_turbo.img2img_strength=0.5"], "steps * img2img_strength"),
        (["synthesize.sdxl_turbo.canny_low=30", "synthesize.sdxl_turbo.canny_high=20"], "canny_low: 30 must be below"),
        (["synthesize.sdxl_turbo.resolution=500"], "resolution: 500 is not a multiple of 64"),
        (["synthesize.sdxl_turbo.device=cpu", "synthesize.sdxl_turbo.model_cpu_offload=true"], "needs a GPU"),
    ],
)
def test_synthaug_check_enforces_the_sdxl_rules(assignments, problem, capsys):
    from synthaug.tools.cli import check_main

    with pytest.raises(ParamsError):
        check_main(assignments)
    assert problem in capsys.readouterr().err


# --- one pipeline per stage -------------------------------------------------------------------------------------


def test_runs_share_one_pipeline_and_encode_each_prompt_once(tiny_synth_params, monkeypatch):
    sdxl_turbo._cached_pipeline.cache_clear()
    loads = []
    monkeypatch.setattr(sdxl_turbo, "load_pipeline", lambda *a: loads.append(a) or load_pipeline(*a))
    first = SdxlTurboGenerator(tiny_synth_params.sdxl_turbo, real_images(), 32, CPU)
    second = SdxlTurboGenerator(with_backend(tiny_synth_params, batch_size=2), real_images(), 32, CPU)
    assert first.pipeline is second.pipeline and len(loads) == 1
    encode = first.pipeline.encode_prompt
    calls = []
    spy = lambda *a, **k: calls.append(k.get("prompt", a[0] if a else None)) or encode(*a, **k)  # noqa: E731
    monkeypatch.setattr(first.pipeline, "encode_prompt", spy)
    first(items((4, 4)))
    second(items((4, 4)))
    assert sorted(c for c in calls if c is not None) == ["a cat", "a dog"]  # None: the pipeline's own, given embeddings


@pytest.mark.parametrize("guidance", [0.0, 2.0])
def test_cached_prompt_embeddings_give_the_images_the_pipeline_gives_from_text(tiny_synth_params, guidance):
    params = with_backend(tiny_synth_params, guidance_scale=guidance)

    class FromText(SdxlTurboGenerator):
        def _prompt_embeddings(self, prompts, guided):
            return {"prompt": prompts}

    planned = items((3, 3))
    cached = SdxlTurboGenerator(params, real_images(), 32, CPU)(planned)
    from_text = FromText(params, real_images(), 32, CPU)(planned)
    # Each prompt is encoded alone, not in its batch: float rounding may move a rare pixel by one level.
    assert np.abs(cached.astype(int) - from_text.astype(int)).max() <= 1 and (cached != from_text).mean() < 1e-3


def test_a_compiled_pipeline_draws_full_batches_only(tiny_synth_params, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: module)  # the batch shapes are under test
    generator = SdxlTurboGenerator(with_backend(tiny_synth_params, compile=True), real_images(), 32, CPU)
    sizes = []
    call = generator.pipeline.__call__
    spy = lambda self, **k: sizes.append(len(k["generator"])) or call(**k)  # noqa: E731
    monkeypatch.setattr(type(generator.pipeline), "__call__", spy)
    planned = items((4, 1))
    images = generator(planned)
    assert sizes == [3, 3] and images.shape == (5, 32, 32, 3)
    plain = SdxlTurboGenerator(tiny_synth_params.sdxl_turbo, real_images(), 32, CPU)
    np.testing.assert_allclose(images.astype(int), plain(planned).astype(int), atol=2)


def test_speedup_params_reach_the_pipeline(tiny_synth_params):
    params = with_backend(tiny_synth_params, channels_last=True, fuse_qkv=True)
    pipeline = shared_pipeline(params, CPU).pipeline
    conv = pipeline.unet.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert pipeline.unet.attn_processors and all(
        type(p).__name__.startswith("Fused") for p in pipeline.unet.attn_processors.values()
    )


# --- the stage: one load for its runs, the run named in a failure, the weights recorded ---------------------------


@pytest.fixture
def sdxl_project(tmp_path, monkeypatch, project_params, tiny_synth_params):
    from synthaug.core.io import write_json
    from synthaug.data.storage import ImageSet, save_image_set, save_index_arrays
    from synthaug.generators.backends import GENERATOR_FILE
    from synthaug.pipeline.synthesize import SynthesizePaths

    labels = np.repeat(np.arange(2), [2, 4])
    images = np.repeat(real_images()[:6], 1, axis=0)
    save_image_set(tmp_path / "data/train.npz", ImageSet(images, labels, ("cat", "dog")))
    save_image_set(tmp_path / "data/test.npz", ImageSet(images[:4], np.repeat(np.arange(2), 2), ("cat", "dog")))
    write_json(tmp_path / "data/meta.json", {"sha256": "fixture"})
    save_index_arrays(tmp_path / "splits.npz", {"train": np.arange(6), "val": np.arange(0), "full": np.arange(6)})
    for run in ("seed0", "seed1"):
        write_json(tmp_path / "models" / run / GENERATOR_FILE, {"generator": "sdxl_turbo", "trained": False})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    names = ("out", "eval", "previews")
    paths = SynthesizePaths(
        tmp_path / "models", tmp_path / "data", tmp_path / "splits.npz", *(tmp_path / n for n in names)
    )
    from synthaug.core.param_rules import parse_section
    from synthaug.core.params import ExperimentParams

    experiment = dict(project_params["experiment"], seeds=[0, 1], generator_runs="per_seed", generators=["sdxl_turbo"])
    params = tiny_synth_params.model_copy(update={"eval_per_class": 1})
    return params, parse_section("experiment", experiment, ExperimentParams), paths


def test_the_stage_loads_once_for_its_runs_and_records_device_and_weights(sdxl_project, monkeypatch):
    from synthaug.pipeline.synthesize import synthesize_generator

    sdxl_turbo._cached_pipeline.cache_clear()
    loads = []
    monkeypatch.setattr(sdxl_turbo, "load_pipeline", lambda *a: loads.append(a) or load_pipeline(*a))
    params, experiment, paths = sdxl_project
    synthesize_generator("sdxl_turbo", params, experiment, paths)
    assert len(loads) == 1
    record = json.loads(paths.previews.with_suffix(".json").read_text())
    assert record["device"] == "cpu" and set(record["runs"]) == {"seed0", "seed1"}
    assert record["weights"]["model"] == {
        "source": params.sdxl_turbo.model,
        "commit": None,
        "variant": "full precision",
    }
    from synthaug.report.notes import weights_note

    assert f"sdxl_turbo model {params.sdxl_turbo.model} (commit unknown: a local folder" in weights_note(
        {"sdxl_turbo": record}
    )


def test_a_nan_image_fails_the_stage_naming_the_run_and_publishes_nothing(sdxl_project, monkeypatch):
    from synthaug.pipeline.synthesize import synthesize_generator

    params, experiment, paths = sdxl_project
    vae = shared_pipeline(params.sdxl_turbo, CPU).pipeline.vae
    decode = vae.decode

    def nan_decode(latents, *args, **kwargs):
        out = decode(latents, *args, **kwargs)
        (out[0] if isinstance(out, tuple) else out.sample)[-1] = float("nan")
        return out

    monkeypatch.setattr(vae, "decode", nan_decode)
    with pytest.raises(BrokenImages, match=r"^synthesize/sdxl_turbo/seed0: 1 image\(s\) of class cat are non-finite"):
        synthesize_generator("sdxl_turbo", params, experiment, paths)
    assert not paths.out.exists() and not paths.eval_out.exists()


def test_synthaug_download_says_in_one_line_when_the_hub_cannot_give_a_model(hub_layout, tmp_path):
    from synthaug.tools.cli import download_main

    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    with serve({"org/sdxl": hub_layout / "sdxl"}) as (endpoint, _):
        with pytest.raises(ModelLoadError, match=r"^cannot download org/missing: RepositoryNotFoundError"):
            download_main(
                [str(tmp_path / "models"), "synthesize.sdxl_turbo.model=org/missing", f"--conf={conf}"]
                + [f"--endpoint={endpoint}"]
            )
    assert not (conf / "local/settings.yaml").exists()
