#!/usr/bin/env bash
# One grid point on one machine, the way DVC runs experiments on many: a fresh clone of the project's git origin,
# `dvc exp run --pull --allow-missing` (stages already in the shared DVC remote's run-cache are restored, not
# rerun), then `dvc exp push --run-cache` back to origin. Slurm and SkyPilot only launch this script N times.
#
# usage: cluster/worker.sh POINT GRID_FILE
#   POINT      0..N-1 (N: `synthaug grid GRID_FILE --count`), or `shared`: run once before the points, it runs the
#              stages every point shares and pushes them to the run-cache
#   GRID_FILE  one `dvc exp run -S` value per line; a path relative to the clone (a committed file) or absolute
# environment:
#   SYNTHAUG_ORIGIN   git URL of the project (required); its default DVC remote is the shared one
#   SYNTHAUG_REV      branch or tag to clone (default main)
#   SYNTHAUG_SCRATCH  folder for the clone (default $TMPDIR or /tmp); removed at exit unless the point failed
#   MLFLOW_TRACKING_URI and the DVC remote's credentials pass through to the stages
# needs: git, and `dvc` and `synthaug` on PATH (a virtual environment from `make install`)
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: cluster/worker.sh POINT|shared GRID_FILE" >&2
  exit 2
fi
point=$1
grid=$2
: "${SYNTHAUG_ORIGIN:?set SYNTHAUG_ORIGIN to the git URL of the project}"
rev=${SYNTHAUG_REV:-main}
scratch=$(mktemp -d "${SYNTHAUG_SCRATCH:-${TMPDIR:-/tmp}}/synthaug-$point-XXXXXX")
# A failed point keeps its clone for inspection; a finished one leaves nothing behind.
trap 'status=$?; if [ $status -eq 0 ]; then rm -rf "$scratch"; else
  echo "worker $point: failed (exit $status); its clone stays in $scratch" >&2; fi' EXIT

echo "worker $point: start $(date +%s.%N) on $(hostname) in $scratch"
git clone --quiet --branch "$rev" "$SYNTHAUG_ORIGIN" "$scratch/repo"
cd "$scratch/repo"
# The stages import this clone's library, not the one the virtual environment was installed from.
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export DVC_NO_ANALYTICS=1
# Under Slurm, torch's threads follow the CPUs the job was given, not the node's core count: two tasks sharing a
# node would otherwise each start one thread per core and slow each other down.
if [ -n "${SLURM_CPUS_ON_NODE:-}" ] && [ -z "${OMP_NUM_THREADS:-}" ]; then
  export OMP_NUM_THREADS=$SLURM_CPUS_ON_NODE
fi

if [ "$point" = shared ]; then
  listing=$(synthaug grid "$grid" --shared)
  if [ -z "$listing" ]; then
    echo "worker shared: the points share no stage"
  else
    mapfile -t arguments <<<"$listing"
    dvc exp run --pull --allow-missing "${arguments[@]}"
    dvc push --run-cache
  fi
else
  listing=$(synthaug grid "$grid" --point "$point")
  mapfile -t arguments <<<"$listing"
  dvc exp run --pull --allow-missing "${arguments[@]}"
  dvc exp push --run-cache --rev HEAD origin
fi
echo "worker $point: end $(date +%s.%N)"
