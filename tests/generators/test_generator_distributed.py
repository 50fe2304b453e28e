"""train_generator under torchrun with 2 CPU processes (gloo DDP): DDPM against one process, GAN replicas in sync."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file

from synthaug.data.storage import ImageSet, save_image_set, save_index_arrays

from ..conftest import HANG_GUARD_S, ROOT, finished_stage_runs, stage_env

STAGE = str(ROOT / "stages" / "train_generator.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


@pytest.fixture
def project(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), [4, 8, 12])
    images = (rng.integers(0, 60, (len(labels), 8, 8, 3)) + 60 * labels[:, None, None, None]).astype(np.uint8)
    save_image_set(tmp_path / "data/train.npz", ImageSet(images, labels.astype(np.int64), ("a", "b", "c")))
    save_index_arrays(
        tmp_path / "splits.npz", {"train": np.arange(len(labels)), "val": np.arange(0), "full": np.arange(len(labels))}
    )
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    section = params["train_generator"]
    section.update(log_every=2, checkpoint_every=100, sample_every=100, samples_per_class=1, device="cpu")
    # a global batch of 5: shares of 3 and 2, so the loss weighting matters
    section["ddpm"].update(
        steps=4,
        batch_size=5,
        block_out_channels=[8, 16],
        layers_per_block=1,
        attention=False,
        preview_steps=2,
        warmup_steps=2,
        mixed_precision="no",
    )
    section["gan"].update(steps=4, batch_size=5, latent_dim=8, base_channels=8)
    params["experiment"].update(seeds=[0], generator_runs="per_seed")  # one generator run: seed0/
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def launch(project: Path, command: list[str], timeout: int = HANG_GUARD_S) -> subprocess.CompletedProcess:
    env = stage_env(project)
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def train_stage(project: Path, generator: str, out: str, launcher: list[str]) -> subprocess.CompletedProcess:
    return launch(
        project,
        [
            *launcher,
            STAGE,
            "--generator",
            generator,
            "--data",
            "data",
            "--splits",
            "splits.npz",
            "--out",
            f"{out}/model",
            "--curves",
            f"{out}/curves",
        ],
    )


def exported_weights(folder: Path) -> dict[str, np.ndarray]:
    return {
        f"{path.relative_to(folder)}:{key}": value
        for path in sorted(folder.rglob("*.safetensors"))
        for key, value in load_file(path).items()
    }


def test_ddpm_on_two_gloo_processes_trains_what_one_process_trains(project):
    train_stage(project, "ddpm", "one", [sys.executable])
    two = train_stage(project, "ddpm", "two", TORCHRUN)
    assert "rank 1 of 2 done" in two.stdout + two.stderr
    single, ddp = exported_weights(project / "one/model"), exported_weights(project / "two/model")
    assert single.keys() == ddp.keys() and len(single) > 10  # the UNet and its EMA copy
    # same batches and noise, gradients averaged over the global batch: equal up to float rounding, which
    # Adam's normalization blows up to at most a few steps of lr for the few near-zero gradient entries
    difference = np.concatenate([np.abs(ddp[key] - single[key]).ravel() for key in single])
    assert (difference > 1e-6).mean() < 0.05, (difference > 1e-6).mean()
    lr = yaml.safe_load((project / "params.yaml").read_text())["train_generator"]["ddpm"]["lr"]
    assert difference.max() < 2 * 4 * lr
    curves = {out: (project / f"{out}/curves/seed0/loss.csv").read_text().splitlines() for out in ("one", "two")}
    assert curves["one"][0] == curves["two"][0] and len(curves["two"]) == 3  # header + steps 2 and 4
    for row_one, row_two in zip(curves["one"][1:], curves["two"][1:]):
        # the logged loss is the global batch's, reduced over the ranks
        np.testing.assert_allclose(np.array(row_two.split(","), float), np.array(row_one.split(","), float), rtol=1e-4)
    assert not (project / "two/.model.partial").exists()
    assert len(finished_stage_runs(project / "mlflow.db")) == 2  # one per invocation: rank 1 logs nothing


REPLICA_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    from safetensors.torch import save_file
    from synthaug.data.storage import load_image_set
    from synthaug.core.distributed import close_ranks, init_ranks
    from synthaug.core.generator_params import TrainGeneratorParams
    from synthaug.core.param_rules import load_section
    from synthaug.generators.training import LoopSettings, build_trainer, train_generator_loop

    ranks = init_ranks()
    torch.manual_seed(0)
    params = load_section("train_generator", TrainGeneratorParams)
    data = load_image_set("data/train.npz")
    trainer = build_trainer("gan", params, 8, 3, torch.device("cpu"), ranks)
    before = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    settings = LoopSettings(steps=4, batch_size=5, seed=0, balanced_sampling=True, horizontal_flip=True,
                            log_every=2, checkpoint_every=100, sample_every=100)
    work = __import__("pathlib").Path(f"work{ranks.rank}")
    result = train_generator_loop(trainer, data, settings, work, "f", ranks=ranks)
    assert all(np.isfinite(v) for row in result.history for v in row.values()), result.history
    changed = max(float((v.float() - before[k].float()).abs().max()) for k, v in trainer.generator.state_dict().items())
    assert changed > 1e-4, changed
    state = {f"{part}.{k}": v.contiguous() for part in ("generator", "discriminator")
             for k, v in getattr(trainer, part).state_dict().items()}
    save_file(state, f"rank{ranks.rank}.safetensors")
    open(f"rank{ranks.rank}.txt", "w").write(f"rows {len(result.history)} world {ranks.world_size}")
    close_ranks(ranks)
""")


def test_gan_replicas_stay_identical_under_ddp(project):
    (project / "replicas.py").write_text(REPLICA_SCRIPT)
    launch(project, [*TORCHRUN, "replicas.py"])
    assert [(project / f"rank{rank}.txt").read_text() for rank in (0, 1)] == ["rows 2 world 2"] * 2
    rank0, rank1 = load_file(project / "rank0.safetensors"), load_file(project / "rank1.safetensors")
    assert rank0.keys() == rank1.keys() and any("running_mean" in key for key in rank0)
    # DDP keeps the weights equal (the same averaged gradients). BatchNorm statistics are broadcast from
    # rank 0 before each forward, so they differ only by what each rank's last forward (its share) added.
    weights = [key for key in rank0 if not key.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert len(weights) > 10
    for key in weights:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
    statistics = [key for key in rank0 if key.endswith("running_mean")]
    assert any(not np.array_equal(rank0[key], rank1[key]) for key in statistics)  # per-rank BatchNorm on the CPU
