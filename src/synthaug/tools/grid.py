"""A grid of experiments for workers on several machines.

A grid is a list of `dvc exp run -S` overrides in Hydra's sweep syntax, expanded exactly as
`dvc exp run --queue -S` expands it. Its points differ only in some params.yaml keys; the stages that
none of those keys reaches (their own params or any upstream stage's) compute the same outputs for every
point, so they run once and every point restores them from the DVC run-cache.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from synthaug.core.errors import MissingInput, ParamsError

PARAMS_FILE = "params.yaml"


def read_grid(path: str | Path) -> list[str]:
    """The overrides of a grid file: one `-S` value per line; blank lines and `#` comments are skipped."""
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"{path}: no such grid file")
    overrides = [line.strip() for line in path.read_text().splitlines()]
    overrides = [line for line in overrides if line and not line.startswith("#")]
    if not overrides:
        raise ParamsError(f"{path}: the grid file holds no override")
    return overrides


def expand_grid(overrides: Sequence[str]) -> list[list[str]]:
    """Every combination of the sweep overrides, in the order `dvc exp run --queue` queues them."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import get_hydra_sweeps

    by_file = to_path_overrides(overrides)
    for path in by_file:
        if path != PARAMS_FILE:
            raise ParamsError(f"grid: {path}: only {PARAMS_FILE} keys can be swept (composed from conf/)")
    try:
        sweeps = get_hydra_sweeps(by_file)
    except InvalidArgumentError as error:
        raise ParamsError(f"grid: {error}") from None
    except Exception as error:  # Hydra's parser names the bad override in its message
        raise ParamsError(f"grid: cannot parse the overrides: {error}".splitlines()[0]) from None
    return [list(sweep.get(PARAMS_FILE, [])) for sweep in sweeps]


def fixed_overrides(points: Sequence[Sequence[str]]) -> list[str]:
    """The overrides every point shares, in the first point's order."""
    return [override for override in points[0] if all(override in point for point in points[1:])]


def _leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(tree, Mapping) and tree:
        for key, value in tree.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, tree


def differing_keys(composed: Sequence[Mapping[str, Any]]) -> set[str]:
    """The params.yaml leaves whose values are not the same in every composed params tree."""
    flat = [dict(_leaves(tree)) for tree in composed]
    keys = set().union(*flat)
    return {key for key in keys if any(tree.get(key, KeyError) != flat[0].get(key, KeyError) for tree in flat)}


def touches(key: str, param: str) -> bool:
    """Whether a change of params.yaml key `key` changes the stage param `param` (a key or a whole section)."""
    return key == param or key.startswith(param + ".") or param.startswith(key + ".")


def shared_stages(
    params_by_stage: Mapping[str, Collection[str] | None],
    upstream_by_stage: Mapping[str, Collection[str]],
    changed_keys: Collection[str],
) -> list[str]:
    """The stages whose outputs no changed key can change, in the mapping's order.

    A stage's params of None stand for the whole params file. A stage is reached when a changed key
    touches its own params or when any of its upstream stages is reached.
    """

    def reached_itself(stage: str) -> bool:
        params = params_by_stage[stage]
        if params is None:
            return bool(changed_keys)
        return any(touches(key, param) for key in changed_keys for param in params)

    direct = {stage for stage in params_by_stage if reached_itself(stage)}
    return [
        stage
        for stage in params_by_stage
        if stage not in direct and not any(up in direct for up in upstream_by_stage.get(stage, ()))
    ]


def set_param_arguments(overrides: Sequence[str]) -> list[str]:
    """`-S` arguments for `dvc exp run`, one list item per command-line word."""
    return [word for override in overrides for word in ("-S", override)]
