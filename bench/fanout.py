"""A two-point grid fanned out by Slurm against the same two points run one after the other on one machine.

Fan-out: a bare git origin and a directory DVC remote in a temporary folder, a single-node Slurm cluster started
here (tests/slurm.py; needs root and Debian's slurm-wlm and munge), `cluster/slurm/submit.sh GRID`: the shared
stages' job, then both points as array tasks at once, each in its own clone. Wall time from submission until
the last task ends, plus each job's own span from its worker's log.
One after the other: a fresh clone of the same origin, `dvc exp run -S <point 0>`, then `dvc exp run -S <point 1>`
(the second restores the shared stages from the local run-cache).

    python bench/fanout.py --archive ../shared/datasets/cifar10-jpg.tar.gz            # the demo preset
    python bench/fanout.py --tiny                                                     # the e2e test's tiny project

Prints the table; writes metrics/bench/fanout.json (or --out) and its section of metrics/bench.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from record import machine_info, save_bench

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import server_folder  # noqa: E402
from tests.e2e.project import push_to_new_origin, tiny_project  # noqa: E402
from tests.e2e.project import run as run_checked  # noqa: E402
from tests.slurm import slurm_cluster, submitted_jobs, worker_times  # noqa: E402

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    return run_checked(command, cwd, env).stdout


def project(base: Path, tiny: bool, env: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """A copy of this checkout's committed project (or the tiny test project) with its own git history."""
    if tiny:
        return tiny_project(base, ["gan"], ["baseline", "full"], [0])
    repo = base / "repo"
    run(["git", "clone", "-q", str(ROOT), str(repo)], base, env)
    shutil.rmtree(repo / ".git")
    return repo, {**env, "PYTHONPATH": str(repo / "src")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, help="CIFAR-10 ImageFolder tarball (the demo preset)")
    parser.add_argument("--tiny", action="store_true", help="the e2e test's tiny project instead of the demo")
    parser.add_argument("--grid", nargs="+", default=["train.lr=3e-4,1e-3"], help="the grid's -S values")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default metrics/bench/fanout.json)")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C: the Slurm cluster and the temporary folder go with it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if not args.tiny and not args.archive:
        parser.error("give --archive (the demo preset) or --tiny")
    base = Path(tempfile.mkdtemp(prefix="synthaug-fanout-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))},
        **GIT_IDENTITY,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
    }
    try:
        repo, env = project(base, args.tiny, env)
        grid = list(args.grid)
        if args.archive:
            grid.append(f"fetch.archive={args.archive.resolve()}")
        (repo / "grid.txt").write_text("\n".join(grid) + "\n")
        origin = push_to_new_origin(repo, base, env)
        points = run(["synthaug", "grid", "grid.txt"], repo, env)
        print(points)

        with server_folder("synthaug-slurm-") as folder, slurm_cluster(folder) as slurm:
            logs = base / "logs"
            worker_env = {
                **env,
                **slurm.env(),
                "SYNTHAUG_ORIGIN": str(origin),
                "SYNTHAUG_SCRATCH": str(base),
                "SYNTHAUG_LOGS": str(logs),
            }
            start = time.perf_counter()
            submitted = run(["cluster/slurm/submit.sh", "grid.txt"], repo, worker_env)
            shared_job, grid_job = submitted_jobs(submitted)
            states = slurm.wait([shared_job, grid_job], 6 * 3600)
            fanout_s = time.perf_counter() - start
        if any(state != ("COMPLETED", "0:0") for state in states.values()):
            raise SystemExit(f"a job failed: {states}; logs in {logs}")
        times = {path.name: worker_times(path.read_text()) for path in sorted(logs.iterdir())}
        spans = {name: end - start for name, (start, end) in times.items()}

        sequential = base / "sequential"
        run(["git", "clone", "-q", str(origin), str(sequential)], base, env)
        sequential_env = {**env, "PYTHONPATH": str(sequential / "src")}
        start = time.perf_counter()
        for index in (0, 1):
            arguments = run(["synthaug", "grid", "grid.txt", "--point", str(index)], sequential, sequential_env)
            run(["dvc", "exp", "run", *arguments.splitlines()], sequential, sequential_env)
        sequential_s = time.perf_counter() - start
    finally:
        shutil.rmtree(base, ignore_errors=True)

    rows = {
        "fan-out (Slurm: shared job, then 2 array tasks at once)": fanout_s,
        "one after the other (one clone, dvc exp run twice)": sequential_s,
    }
    width = max(map(len, rows))
    print(f"{'grid of 2 points':<{width}}  wall s")
    for name, seconds in rows.items():
        print(f"{name:<{width}}  {seconds:7.1f}")
    for name, seconds in spans.items():
        print(f"  {name}: worker ran {seconds:.1f} s")
    print(f"fan-out / one after the other: {fanout_s / sequential_s:.2f}")
    save_bench(
        "fanout",
        {
            "machine": machine_info(),
            "project": "tiny test project" if args.tiny else "demo preset",
            "grid": grid,
            "fanout_s": round(fanout_s, 1),
            "sequential_s": round(sequential_s, 1),
            "ratio": round(fanout_s / sequential_s, 3),
            "worker_spans_s": {name: round(seconds, 1) for name, seconds in spans.items()},
        },
        args.out,
    )


if __name__ == "__main__":
    main()
