"""One demo ViT stage alone and beside a busy core, under each OpenMP wait policy, in one run.

torch's OpenMP threads spin while they wait for each other; beside a busy core the spinning thread takes the core
its partner needs. synthaug shortens the spin (core/threads.py). This script times `train_classifier@vit-baseline`
(the demo's data, one seed, the ViT as the records time it) under each wait setting, alone and beside
`while :; do :; done`, and writes the ratios.

    python bench/busy_core.py --archive ../shared/datasets/cifar10-jpg.tar.gz [--repeats 3]
"""

from __future__ import annotations

import argparse
import ctypes
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from gpu_check import copy_project, dag_env, git_env
from record import machine_info, save_bench
from synthaug.core.threads import SPIN_BEFORE_SLEEP, WAIT_SETTINGS
from synthaug.tools.compose import compose_params

ROOT = Path(__file__).resolve().parent.parent
STAGE = [
    sys.executable,
    "stages/train_classifier.py",
    *("--classifier", "vit", "--variant", "baseline", "--data", "data/cifar10", "--splits", "data/splits.npz"),
    *("--model", "models/classifiers/vit-baseline", "--summary", "metrics/train/vit-baseline"),
    *("--summary-detail", "metrics/detail/train/vit-baseline", "--curves", "metrics/curves/vit-baseline"),
    *("--scores", "metrics/eval/vit-baseline", "--scores-detail", "metrics/detail/eval/vit-baseline"),
    *("--predictions", "metrics/predictions/vit-baseline", "--confusion", "metrics/confusion/vit-baseline"),
]


# The ViT stage metrics/bench/busy_core*.json time: 2 epochs at 32 px, patch 8, with augmentation.
VIT_STAGE = ["train.epochs=2", "train.batch_size=64", "train.lr=1e-3", "train.augment_p=0.5", "train.vit.patch_size=8"]


def demo_project(scratch: Path, archive: Path) -> Path:
    """A copy of the project with the demo's data fetched and cut (one seed)."""
    repo = copy_project(scratch / "project")
    params = compose_params(repo / "conf", ["experiment.seeds=[0]", f"fetch.archive={archive.resolve()}", *VIT_STAGE])
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "busy core"]):
        subprocess.run(command, cwd=repo, check=True, capture_output=True, env=git_env())
    subprocess.run(["dvc", "repro", "imbalance"], cwd=repo, check=True, capture_output=True, env=dag_env(repo))
    return repo


# What each row sets in the stage's environment; the first is what a stage does unless the user sets one.
POLICIES = {
    f"synthaug (GOMP_SPINCOUNT={SPIN_BEFORE_SLEEP})": {},
    "libgomp default (GOMP_SPINCOUNT=300000)": {"GOMP_SPINCOUNT": "300000"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}


def die_with_parent() -> None:
    """The busy loop ends when this script does, even when it is killed (Linux's PR_SET_PDEATHSIG)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def timed_stage(repo: Path, policy: dict[str, str], busy: bool) -> float:
    env = {k: v for k, v in dag_env(repo).items() if k not in WAIT_SETTINGS}
    env.update(policy)
    loop = subprocess.Popen(["sh", "-c", "while :; do :; done"], preexec_fn=die_with_parent) if busy else None
    try:
        start = time.perf_counter()
        subprocess.run(STAGE, cwd=repo, env=env, check=True, capture_output=True)
        return time.perf_counter() - start
    finally:
        if loop is not None:
            loop.kill()
            loop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", type=Path, required=True, help="CIFAR-10 archive (as fetch.archive takes)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES)[:2], choices=list(POLICIES), help="rows")
    parser.add_argument("--alone-only", action="store_true", help="time each setting alone only (its cost alone)")
    parser.add_argument("--out", type=Path, default=None, help="default metrics/bench/busy_core[_alone].json")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {name: [] for name in args.policies}
    with tempfile.TemporaryDirectory() as scratch:
        repo = demo_project(Path(scratch), args.archive)
        timed_stage(repo, {}, busy=False)  # warm the page cache and the compiled-bytecode caches
        for repeat in range(args.repeats):
            for name in args.policies:
                policy = POLICIES[name]
                alone = timed_stage(repo, policy, False)
                if args.alone_only:
                    runs[name].append({"alone_s": round(alone, 1)})
                    print(f"run {repeat + 1} {name:28s} alone {alone:6.1f} s", flush=True)
                    continue
                busy = timed_stage(repo, policy, True)
                runs[name].append(
                    {"alone_s": round(alone, 1), "busy_s": round(busy, 1), "ratio": round(busy / alone, 2)}
                )
                print(
                    f"run {repeat + 1} {name:28s} alone {alone:6.1f} s  beside a busy core {busy:6.1f} s  "
                    f"ratio {busy / alone:.2f}",
                    flush=True,
                )
    alone = {name: round(statistics.median(r["alone_s"] for r in rows), 1) for name, rows in runs.items()}
    worst = ", ".join(f"{name} {max(r.get('ratio', 0) for r in rows):.2f}" for name, rows in runs.items())
    print(f"median alone (s): {alone}" + ("" if args.alone_only else f"; worst ratio: {worst}"))
    save_bench(
        "busy_core_alone" if args.alone_only else "busy_core",
        {
            "machine": machine_info(),
            "command": " ".join(["python", "bench/busy_core.py", *sys.argv[1:]]),
            "stage": "train_classifier@vit-baseline, demo data, seed 0",
            "runs": runs,
            "median_alone_s": alone,
        },
        out=args.out,
    )


if __name__ == "__main__":
    main()
