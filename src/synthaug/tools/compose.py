"""conf/ composed into params.yaml's dict by Hydra, as `dvc exp run` does, and this clone's local settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import yaml

from synthaug.core.errors import ParamsError
from synthaug.core.io import write_text
from synthaug.core.param_rules import validate_all

# This clone's own settings: git-ignored, composed after the preset (conf/config.yaml's `optional local`), so a
# value set once (the CIFAR-10 archive `make demo ARCHIVE=...` names) holds for every later `dvc exp run`.
LOCAL_SETTINGS = Path("local/settings.yaml")  # under conf/


def compose_params(conf_dir: str | Path = "conf", overrides: list[str] | None = None) -> dict[str, Any]:
    """Compose conf/ exactly as `dvc exp run` does (Hydra compose API) into a params.yaml dict."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(Path(conf_dir).resolve()), version_base=None):
        config = compose(config_name="config", overrides=overrides or [])
    return cast(dict[str, Any], OmegaConf.to_container(config, resolve=True))


def compose_assignments(conf_dir: str | Path, assignments: list[str]) -> tuple[dict[str, Any], list[str]]:
    """conf/ composed with KEY=VALUE assignments (as `dvc exp run -S` takes them), and the keys they set; a key
    conf/config.yaml does not define, or a malformed assignment, is a ParamsError naming it."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    keys = []
    for assignment in assignments:
        key, sep, _ = assignment.partition("=")
        if not sep or not key or key.startswith(("+", "~")):
            raise ParamsError(f"{assignment!r}: expected KEY=VALUE for a key conf/config.yaml defines")
        keys.append(key)
    try:
        return compose_params(conf_dir, assignments), keys
    except (HydraException, OmegaConfBaseException) as exc:
        first_line = str(exc).strip().splitlines()[0]  # Hydra's second line suggests '+key', which params refuse
        raise ParamsError(f"{first_line} (not a key of conf/config.yaml, or not a valid value)") from None


def write_local_settings(conf_dir: str | Path, assignments: list[str]) -> tuple[Path, dict[str, Any]]:
    """Set KEY=VALUE assignments (Hydra's override syntax) in conf_dir/local/settings.yaml, keeping what the file
    already sets. The composed result must validate, so a wrong key or value fails here, naming it, and the file is
    left as it was. Returns the file and the values now set."""
    from omegaconf import OmegaConf

    path = Path(conf_dir) / LOCAL_SETTINGS
    settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {} if path.is_file() else {}
    composed, keys = compose_assignments(conf_dir, assignments)
    validate_all(composed)
    merged = OmegaConf.create(settings)
    for key in keys:
        value = composed
        for part in key.split("."):
            value = value[part]
        OmegaConf.update(merged, key, value, force_add=True)
    settings = cast(dict[str, Any], OmegaConf.to_container(merged))
    header = (
        "# @package _global_\n# This clone's own settings, composed after the preset (git-ignored): written by "
        "`synthaug local KEY=VALUE` and `make demo ARCHIVE=...`.\n"
    )
    write_text(path, header + yaml.safe_dump(settings, sort_keys=False))
    return path, settings
