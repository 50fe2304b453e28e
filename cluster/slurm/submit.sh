#!/usr/bin/env bash
# Submit a synthaug grid to Slurm: one job for the stages every point shares, then an array job with one task per
# grid point that starts when the first succeeds and restores those stages from the run-cache.
# usage: cluster/slurm/submit.sh GRID_FILE [sbatch options for every job, e.g. --partition=gpu --gres=gpu:1]
# Run it from a checkout of the project with `synthaug` on PATH and SYNTHAUG_ORIGIN set (cluster/worker.sh).
# Logs: $SYNTHAUG_LOGS (default ./slurm-logs), one file per job and task. Prints the two job ids.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: cluster/slurm/submit.sh GRID_FILE [sbatch options]" >&2
  exit 2
fi
grid=$1
shift
: "${SYNTHAUG_ORIGIN:?set SYNTHAUG_ORIGIN to the git URL of the project}"
cd "$(dirname "$0")/../.."
points=$(synthaug grid "$grid" --count)
logs=${SYNTHAUG_LOGS:-$PWD/slurm-logs}
mkdir -p "$logs"
shared=$(sbatch --parsable --output="$logs/%x-shared-%j.out" "$@" cluster/slurm/grid.sbatch "$grid")
grid_job=$(sbatch --parsable --array="0-$((points - 1))" --dependency="afterok:$shared" --kill-on-invalid-dep=yes \
  --output="$logs/%x-%A_%a.out" "$@" cluster/slurm/grid.sbatch "$grid")
echo "shared stages: job $shared; $points grid points: array job $grid_job (logs in $logs)"
