"""The whole DAG as a user runs it: wall time per stage, peak memory (RSS) per stage, and the no-op time.

Runs a pipeline command in a repository (default `dvc repro --force`, every stage from scratch), reads
DVC's "Running stage" lines to know which stage runs, and samples the resident memory of the stage's
process tree (DVC's own process excluded) from /proc twice a second (walking /proc ten times a second
took about 6 % of a core from the stages it timed). Then times a plain `dvc repro`, which should do
nothing, and reads the gaps between one stage's MLflow run and the next (start-up and DVC's bookkeeping). Prints a
table; writes metrics/bench/<--name, default pipeline>.json and its section of
metrics/bench.json.

    python bench/pipeline.py --repo ../demo-clone -- dvc exp run --force -S fetch.archive=/abs/cifar10-jpg.tar.gz
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path

from record import machine_info, save_bench
from synthaug.pipeline.profile_model import resident_bytes

STAGE_LINE = re.compile(r"Running stage '([^']+)'")


def process_tree(root: int) -> list[int]:
    """root's descendants (not root), from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def run_and_sample(
    command: list[str],
    repo: Path,
    interval_s: float = 0.5,
    env: dict[str, str] | None = None,
    timeout_s: float | None = None,
    check: bool = True,
) -> tuple[float, list[dict]]:
    """Wall time of `command`, and per stage (in run order) its wall time and peak RSS of its processes. After
    `timeout_s` the command is killed; with `check`, a command that failed (or was killed) exits this script."""
    stages: list[dict] = []
    current: dict | None = None
    lock = threading.Lock()
    start = time.perf_counter()
    # unbuffered: DVC's "Running stage" lines must arrive while the stage runs, not when the pipe's buffer fills
    env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command,
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss = sum(resident_bytes(pid) for pid in process_tree(process.pid))
            with lock:
                if current is not None:
                    current["peak_rss_mb"] = max(current["peak_rss_mb"], round(rss / 2**20, 1))
            done.wait(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # the stage's processes too: DVC runs them in its process group, which is the command's own
    timer = threading.Timer(timeout_s or 0.0, lambda: os.killpg(process.pid, signal.SIGKILL))
    timer.daemon = True
    if timeout_s is not None:
        timer.start()
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="", flush=True)
        match = STAGE_LINE.search(line)
        if match:
            now = time.perf_counter()
            with lock:
                if current is not None:
                    current["seconds"] = round(now - current.pop("_start"), 2)
                current = {"stage": match[1], "peak_rss_mb": 0.0, "_start": now}
                stages.append(current)
    returncode = process.wait()
    timer.cancel()
    done.set()
    sampler.join()
    wall = time.perf_counter() - start
    if current is not None and "_start" in current:
        current["seconds"] = round(time.perf_counter() - current.pop("_start"), 2)
    if returncode != 0 and check:
        raise SystemExit(f"{' '.join(command)} failed with exit code {returncode}")
    return wall, stages


def stage_gaps(store: Path) -> list[float]:
    """Seconds between one DVC stage's end and the next stage's first work, from an MLflow sqlite store.

    A stage is its runs' names without `/seed<k>` (one run per seed); runs nested in a stage fall inside its span.
    """
    import sqlite3

    if not store.is_file():
        return []
    with sqlite3.connect(store) as db:
        rows = db.execute(
            "select name, start_time, end_time from runs r where status = 'FINISHED' and end_time is not null and "
            "not exists (select 1 from tags t where t.run_uuid = r.run_uuid and t.key = 'synthaug.role')"
        ).fetchall()
    stages: dict[str, tuple[int, int]] = {}
    for name, start, end in rows:
        stage = re.sub(r"/seed\d+$", "", name or "")
        first, last = stages.get(stage, (start, end))
        stages[stage] = (min(first, start), max(last, end))
    spans: list[tuple[int, int]] = []
    for start, end in sorted(stages.values()):  # a span that starts inside an earlier one is its child
        if spans and start < spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return [round((spans[i + 1][0] - spans[i][1]) / 1000, 2) for i in range(len(spans) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=Path("."), help="the DVC repository to run in")
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, help="after --: the pipeline command (default dvc repro --force)"
    )
    parser.add_argument("--name", default="pipeline", help="the result's name: metrics/bench/<name>.json")
    args = parser.parse_args()
    command = [part for part in args.command if part != "--"] or ["dvc", "repro", "--force"]

    wall, stages = run_and_sample(command, args.repo)
    noop_start = time.perf_counter()
    noop = subprocess.run(["dvc", "repro"], cwd=args.repo, capture_output=True, text=True)
    noop_seconds = time.perf_counter() - noop_start
    reran = STAGE_LINE.findall(noop.stdout)

    print(f"\n{'stage':44s} {'seconds':>8s} {'peak RSS (MB)':>14s}")
    for stage in stages:
        print(f"{stage['stage']:44s} {stage['seconds']:8.1f} {stage['peak_rss_mb']:14.0f}")
    peak = max((s["peak_rss_mb"] for s in stages), default=0.0)
    print(f"{'DAG wall time':44s} {wall:8.1f} {peak:14.0f}")
    print(
        f"{'no-op dvc repro':44s} {noop_seconds:8.2f}   "
        f"({'no stage ran' if not reran else 'reran: ' + ', '.join(reran)})"
    )
    gaps = stage_gaps(args.repo / "mlflow.db")
    if gaps:
        print(f"{'gap between stage runs (MLflow), median':44s} {statistics.median(gaps):8.2f}   (max {max(gaps):.2f})")
    save_bench(
        args.name,
        {
            "machine": machine_info(),
            "command": f"python bench/pipeline.py --repo {args.repo} --name {args.name} -- {' '.join(command)}",
            "dag_wall_seconds": round(wall, 1),
            "peak_stage_rss_mb": peak,
            "noop_repro_seconds": round(noop_seconds, 2),
            "noop_reran_stages": len(reran),
            "stage_gap_seconds_median": statistics.median(gaps) if gaps else None,
            "stage_gap_seconds": gaps,
            "stages": {s["stage"]: {"seconds": s["seconds"], "peak_rss_mb": s["peak_rss_mb"]} for s in stages},
        },
    )


if __name__ == "__main__":
    main()
