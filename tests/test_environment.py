"""The environment is the lock: each intent file agrees with the lock resolved from it, and the virtual environment
`make install` (or `make sky`) builds holds exactly the lock's packages at the lock's versions."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .conftest import ROOT

# (intent file, its lock, the environment installed from it)
ENVIRONMENTS = [
    ("requirements.txt", "requirements.lock", ".venv"),
    ("cluster/requirements-skypilot.txt", "cluster/requirements-skypilot.lock", ".venv-sky"),
]
PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


@dataclass
class Locked:
    version: str
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)  # what asked for it: '-r <intent file>' or another package


def read_lock(path: Path) -> dict[str, Locked]:
    """The packages of a lock written by `uv pip compile --generate-hashes`, by canonical name."""
    packages: dict[str, Locked] = {}
    current: Locked | None = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or line.startswith("#"):
            continue
        if not line[0].isspace():
            match = PINNED.match(line)
            assert match, f"{path.name}:{number}: not an exact pin: {line!r}"
            current = packages[canonicalize_name(match[1])] = Locked(match[2])
        elif stripped.startswith("--hash="):
            current.hashes.append(stripped.removeprefix("--hash=").rstrip(" \\"))
        elif stripped.startswith("#"):
            via = stripped.lstrip("#").strip().removeprefix("via").strip()
            if via:
                current.via.append(via)
    return packages


def read_intent(path: Path) -> list[Requirement]:
    lines = (line.split(" #")[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("#")]


def installed_packages(venv: Path) -> dict[str, str]:
    """`pip freeze --all` of a virtual environment (the project's own editable install left out)."""
    freeze = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "freeze", "--all", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    packages = {}
    for line in freeze:
        match = PINNED.match(line)
        # a line without '==' (a direct URL or a path) is a package the lock cannot have given
        name, version = (match[1], match[2]) if match else (line.split(" @ ")[0], line)
        packages[canonicalize_name(name)] = version
    return packages


@pytest.mark.parametrize("intent, lock, venv", ENVIRONMENTS, ids=[venv for *_, venv in ENVIRONMENTS])
def test_every_locked_package_is_pinned_with_hashes(intent, lock, venv):
    locked = read_lock(ROOT / lock)
    assert len(locked) > 1
    unhashed = sorted(name for name, package in locked.items() if not package.hashes)
    assert not unhashed, f"{lock}: no --hash for {unhashed}: run make lock"
    assert all(h.startswith("sha256:") for package in locked.values() for h in package.hashes)


@pytest.mark.parametrize("intent, lock, venv", ENVIRONMENTS, ids=[venv for *_, venv in ENVIRONMENTS])
def test_intent_and_lock_agree(intent, lock, venv):
    locked = read_lock(ROOT / lock)
    problems = []
    named = set()
    for requirement in read_intent(ROOT / intent):
        name = canonicalize_name(requirement.name)
        named.add(name)
        if name not in locked:
            problems.append(f"{requirement.name} is in {intent} but not in {lock}")
        elif not requirement.specifier.contains(locked[name].version, prereleases=True):
            problems.append(f"{requirement.name}: {lock} has {locked[name].version}, {intent} asks {requirement}")
    direct = {name for name, package in locked.items() if f"-r {intent}" in package.via}
    problems += [f"{name} is locked as a direct dependency but {intent} does not name it" for name in direct - named]
    assert not problems, "; ".join(sorted(problems)) + ": run make lock"


@pytest.mark.parametrize("intent, lock, venv", ENVIRONMENTS, ids=[venv for *_, venv in ENVIRONMENTS])
def test_installed_environment_equals_the_lock(intent, lock, venv):
    environment = ROOT / venv
    if not (environment / "bin/python").exists():
        if os.environ.get("CI"):
            pytest.fail(f"{venv} is missing: make test installs it from {lock}")
        pytest.skip(f"{venv} is not installed (make install / make sky)")
    locked = {name: package.version for name, package in read_lock(ROOT / lock).items()}
    installed = installed_packages(environment)
    problems = [
        f"{name} {installed[name]} is installed, not in {lock}" for name in sorted(set(installed) - set(locked))
    ]
    problems += [f"{name} {locked[name]} is in {lock}, not installed" for name in sorted(set(locked) - set(installed))]
    problems += [
        f"{name} is {installed[name]}, {lock} has {locked[name]}"
        for name in sorted(set(locked) & set(installed))
        if installed[name] != locked[name]
    ]
    assert not problems, f"{venv} differs from {lock}: " + "; ".join(problems)


def test_pre_commit_runs_the_checks_make_test_runs_first():
    import yaml

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    (local,) = config["repos"]
    assert local["repo"] == "local"  # nothing is fetched: the hooks run the venv's pinned tools
    entries = [hook["entry"] for hook in local["hooks"]]
    assert entries == [".venv/bin/ruff check", ".venv/bin/ruff format --check", ".venv/bin/mypy"]
    recipe = (ROOT / "Makefile").read_text().split("\ntest:")[1].split("\n\n")[0]
    assert "$(BIN)/mypy\n" in recipe and "$(BIN)/ruff check" in recipe and "$(BIN)/ruff format --check" in recipe
    checked = subprocess.run(
        [str(ROOT / ".venv/bin/pre-commit"), "validate-config", str(ROOT / ".pre-commit-config.yaml")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
