"""Every DVC stage depends on every synthaug module its script can import, so no library edit leaves a stale result,
and on no folder holding modules it cannot import (but core/), so no edit reruns a stage it cannot change.

The closure is derived statically (ast) from the stage's script, following imports inside functions too: a lazy
import still runs when the stage calls that function. A package `__init__.py` that holds only a docstring
decides nothing and is not required.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT

SRC = ROOT / "src"
SCRIPT = re.compile(r"\bpython\s+(stages/\w+\.py)\b")


def module_file(module: str, src: Path = SRC) -> Path | None:
    """The file that `import module` executes, or None outside src/ (third-party, stdlib)."""
    base = src.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def imported_modules(path: Path) -> set[str]:
    """Absolute synthaug modules a file imports anywhere in its body, parents included (`a.b.c` runs a, a.b)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from a.b import c` imports a.b, and a.b.c too when c is a submodule
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        for name in names:
            if name.split(".")[0] != "synthaug":
                continue
            parts = name.split(".")
            found.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return found


def import_closure(script: Path, src: Path = SRC) -> set[Path]:
    """Files under src/ that running `script` can execute."""
    seen: set[Path] = set()
    pending = [script]
    while pending:
        for module in imported_modules(pending.pop()):
            path = module_file(module, src)
            if path is not None and path not in seen:
                seen.add(path)
                pending.append(path)
    return seen


def decides_nothing(path: Path) -> bool:
    """A package __init__ with nothing but a docstring."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return path.name == "__init__.py" and all(
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body
    )


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def stage_dependencies(dvc_yaml: Path) -> dict[str, tuple[str, list[str]]]:
    """stage name -> (its script, its deps as written), for plain and foreach/matrix stages alike."""
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    found = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        scripts = SCRIPT.findall(body["cmd"])
        assert len(scripts) == 1, f"stage {name}: expected one `python stages/<name>.py` in cmd, got {scripts}"
        found[name] = (scripts[0], [str(dep) for dep in body.get("deps", [])])
    return found


def missing_dependencies(root: Path) -> dict[str, list[str]]:
    """Per stage, the files its script can execute that dvc.yaml does not list (itself or by a folder)."""
    missing = {}
    for name, (script, deps) in stage_dependencies(root / "dvc.yaml").items():
        needed = {script} | {
            path.relative_to(root).as_posix()
            for path in import_closure(root / script, root / "src")
            if not decides_nothing(path)
        }
        absent = sorted(path for path in needed if not covered(path, deps))
        if absent:
            missing[name] = absent
    return missing


def test_every_stage_lists_its_import_closure():
    missing = missing_dependencies(ROOT)
    assert not missing, "dvc.yaml: add these deps, or the stage serves stale results after they change:\n" + "\n".join(
        f"  {stage}: {', '.join(paths)}" for stage, paths in missing.items()
    )


# Where a folder dependency may cover modules its stage never imports: core/ is every stage's base, and the
# generators' training loop reaches synthesize through the checkpoints it already depends on.
OVER_COVERED = {"*": ("src/synthaug/core/",), "synthesize": ("src/synthaug/generators/training.py",)}


def unused_folder_modules(root: Path) -> dict[str, list[str]]:
    """Per stage, modules inside a folder it depends on that its script cannot import (an edit there reruns it)."""
    unused = {}
    for name, (script, deps) in stage_dependencies(root / "dvc.yaml").items():
        imported = {path.relative_to(root).as_posix() for path in import_closure(root / script, root / "src")}
        allowed = OVER_COVERED.get("*", ()) + OVER_COVERED.get(name.split("@")[0], ())
        extra = sorted(
            path.relative_to(root).as_posix()
            for dep in deps
            if dep.startswith("src/") and (root / dep).is_dir()
            for path in (root / dep).rglob("*.py")
            if not decides_nothing(path)
            and path.relative_to(root).as_posix() not in imported
            and not path.relative_to(root).as_posix().startswith(allowed)
        )
        if extra:
            unused[name] = extra
    return unused


def test_no_folder_dependency_reruns_a_stage_that_cannot_use_it():
    unused = unused_folder_modules(ROOT)
    assert not unused, "dvc.yaml: these folders hold modules the stage never imports; list its files instead:\n" + (
        "\n".join(f"  {stage}: {', '.join(paths)}" for stage, paths in unused.items())
    )


def test_an_unused_module_in_a_folder_dependency_is_reported(tmp_path):
    package = tmp_path / "src" / "synthaug"
    (package / "metrics").mkdir(parents=True)
    (package / "metrics" / "fid.py").write_text("X = 1\n")
    (package / "metrics" / "sweeps.py").write_text("Y = 2\n")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "fid.py").write_text("import synthaug.metrics.fid\n")
    (tmp_path / "dvc.yaml").write_text(
        yaml.safe_dump({"stages": {"fid": {"cmd": "python stages/fid.py", "deps": ["src/synthaug/metrics"]}}})
    )
    assert unused_folder_modules(tmp_path) == {"fid": ["src/synthaug/metrics/sweeps.py"]}
    (tmp_path / "dvc.yaml").write_text(
        yaml.safe_dump({"stages": {"fid": {"cmd": "python stages/fid.py", "deps": ["src/synthaug/metrics/fid.py"]}}})
    )
    assert unused_folder_modules(tmp_path) == {}


def test_every_stage_runs_the_script_named_as_the_stage():
    # One hop from a stage name in dvc.yaml to its code: stage <name> runs stages/<name>.py.
    scripts = {name: script for name, (script, _) in stage_dependencies(ROOT / "dvc.yaml").items()}
    assert {name: f"stages/{name}.py" for name in scripts} == scripts
    assert sorted(p.stem for p in (ROOT / "stages").glob("*.py")) == sorted(scripts)  # and no script without a stage


# Lower layers never import upper ones: a module may import its own layer and those listed before it.
LAYERS = (
    ("core",),
    ("data",),
    ("models",),
    ("synthetic",),
    ("generators",),
    ("metrics",),
    ("train",),
    ("report",),
    ("pipeline",),
    ("tools",),
)


def layer_of(module: str) -> int:
    top = module.split(".")[1]
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"synthaug.{top} is in no layer of LAYERS: place it")


def layer_violations(src: Path) -> list[str]:
    found = set()
    for path in sorted((src / "synthaug").rglob("*.py")):
        module = ".".join(path.relative_to(src).with_suffix("").parts)
        if module == "synthaug.__init__":
            continue
        own = layer_of(module)
        for imported in imported_modules(path):
            if imported.count(".") >= 1 and layer_of(imported) > own:
                found.add(f"{module} imports synthaug.{imported.split('.')[1]}")
    return sorted(found)


def test_no_lower_layer_imports_an_upper_one():
    assert layer_violations(SRC) == []


def test_layer_check_catches_an_upward_import(tmp_path):
    package = tmp_path / "synthaug"
    (package / "metrics").mkdir(parents=True)
    (package / "metrics" / "fid.py").write_text("def f():\n    from synthaug.train.classifier import predict\n")
    (package / "train").mkdir()
    (package / "train" / "classifier.py").write_text("from synthaug.metrics.fid import f\n")
    assert layer_violations(tmp_path) == ["synthaug.metrics.fid imports synthaug.train"]


def test_closure_follows_lazy_imports_and_parents(tmp_path):
    package = tmp_path / "src" / "synthaug"
    (package / "metrics").mkdir(parents=True)
    (package / "__init__.py").write_text('"""doc only."""\n')
    (package / "metrics" / "__init__.py").write_text("VALUE = 1\n")
    (package / "metrics" / "fid.py").write_text("def f():\n    from synthaug.train import classifier\n")
    (package / "train").mkdir()
    (package / "train" / "__init__.py").write_text('"""doc."""\n')
    (package / "train" / "classifier.py").write_text("import numpy\nimport synthaug.distributed\n")
    (package / "distributed.py").write_text("")
    (package / "unused.py").write_text("")
    script = tmp_path / "stages" / "fid.py"
    script.parent.mkdir()
    script.write_text("from synthaug.metrics.fid import f\n")
    names = {p.relative_to(package).as_posix() for p in import_closure(script, tmp_path / "src")}
    assert names == {
        "__init__.py",
        "metrics/__init__.py",
        "metrics/fid.py",
        "train/__init__.py",
        "train/classifier.py",
        "distributed.py",
    }
    assert decides_nothing(package / "__init__.py") and not decides_nothing(package / "metrics" / "__init__.py")


@pytest.mark.parametrize(
    ("deps", "expected"),
    [
        (["stages/fid.py", "src/synthaug/metrics/fid.py"], ["src/synthaug/train/classifier.py"]),
        (["stages/fid.py", "src/synthaug/metrics/fid.py", "src/synthaug/train"], []),
        (["stages/fid.py", "src/synthaug/metrics", "src/synthaug/train/classifier.py"], []),
        (["src/synthaug/metrics", "src/synthaug/train/"], ["stages/fid.py"]),
    ],
)
def test_a_missing_module_is_reported(tmp_path, deps, expected):
    package = tmp_path / "src" / "synthaug"
    (package / "metrics").mkdir(parents=True)
    (package / "train").mkdir()
    (package / "metrics" / "fid.py").write_text("from synthaug.train.classifier import predict\n")
    (package / "train" / "classifier.py").write_text("predict = None\n")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "fid.py").write_text("import synthaug.metrics.fid\n")
    (tmp_path / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "fid": {"foreach": ["a"], "do": {"cmd": "python stages/fid.py --generator ${item}", "deps": deps}}
                }
            }
        )
    )
    assert missing_dependencies(tmp_path) == ({"fid": expected} if expected else {})


def library_imports(script: Path) -> set[str]:
    """The synthaug modules a file names in its own import statements."""
    found = set()
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"), str(script))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "synthaug"}


def stage_rule_violations(root: Path) -> list[str]:
    """Stage <name>'s work is in synthaug/pipeline/<name>.py: its script imports that module and core/ only."""
    found = []
    for name, (script, _) in stage_dependencies(root / "dvc.yaml").items():
        own = f"synthaug.pipeline.{name}"
        imported = library_imports(root / script)
        if own not in imported:
            found.append(f"{script} does not import {own}")
        found += [f"{script} imports {m}" for m in sorted(imported - {own}) if not m.startswith("synthaug.core.")]
    return found


def test_each_stage_calls_its_own_pipeline_module():
    assert stage_rule_violations(ROOT) == []


def test_stage_rule_catches_work_done_elsewhere(tmp_path):
    (tmp_path / "stages").mkdir()
    (tmp_path / "dvc.yaml").write_text("stages:\n  imbalance:\n    cmd: python stages/imbalance.py\n    deps: []\n")
    (tmp_path / "stages/imbalance.py").write_text("from synthaug.data.imbalance import make_splits\n")
    assert stage_rule_violations(tmp_path) == [
        "stages/imbalance.py does not import synthaug.pipeline.imbalance",
        "stages/imbalance.py imports synthaug.data.imbalance",
    ]
