"""Where a result came from: the code that decides results (as a digest) and the params it was made with.

A table made elsewhere (a committed sweep, an earlier experiment) is fresh only when both match what this run
uses; the report marks it otherwise. Digests are over git blob ids, so a commit and a working tree compare.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

# What decides a result: the library, the stage scripts and the DAG (params are compared on their own).
CODE_PATHS = ("src", "stages", "dvc.yaml")


def _git(repo: Path, *args: str, stdin: str | None = None) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def _digest(entries: list[tuple[str, str]]) -> str:
    return hashlib.sha256("".join(f"{path}\0{blob}\n" for path, blob in sorted(entries)).encode()).hexdigest()


def code_digest(repo: Path, rev: str | None = None) -> str | None:
    """Digest of CODE_PATHS at commit `rev`, or as the working tree has them (untracked files too); None without git."""
    if rev is not None:
        listing = _git(repo, "ls-tree", "-r", rev, "--", *CODE_PATHS)
        if listing is None:
            return None
        return _digest([(line.split("\t", 1)[1], line.split()[2]) for line in listing.splitlines() if "\t" in line])
    files = _git(repo, "ls-files", "--cached", "--others", "--exclude-standard", "--", *CODE_PATHS)
    if files is None:
        return None
    paths = [path for path in dict.fromkeys(files.splitlines()) if (repo / path).is_file()]
    blobs = _git(repo, "hash-object", "--stdin-paths", stdin="\n".join(paths) + "\n") if paths else ""
    if blobs is None:
        return None
    return _digest(list(zip(paths, blobs.split(), strict=True)))


def git_commit(repo: Path | None = None) -> str:
    """HEAD's commit, or 'unknown' outside git."""
    found = _git(repo or Path.cwd(), "rev-parse", "HEAD")
    return found.strip() if found else "unknown"


def flat_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 1e-3}} -> {'train.lr': 1e-3}; lists stay whole values."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def params_differences(made_with: dict[str, Any], current: dict[str, Any], ignore: tuple[str, ...] = ()) -> list[str]:
    """Flat keys whose values differ (or exist on one side only), except `ignore`d ones."""
    keys = set(made_with) | set(current)
    return sorted(
        key
        for key in keys
        if key not in ignore
        and json.dumps(made_with.get(key), sort_keys=True) != json.dumps(current.get(key), sort_keys=True)
    )
