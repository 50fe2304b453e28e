"""Provenance: code digests that tell a commit's code from the working tree's, and when a sweep table is stale."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from synthaug.core.provenance import code_digest, flat_params, params_differences
from synthaug.report.sweep_runs import sweep_provenance, sweep_staleness


def git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "PATH": "/usr/bin:/bin:/usr/local/bin",
    }
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "stages").mkdir()
    (tmp_path / "src/lib.py").write_text("A = 1\n")
    (tmp_path / "stages/train.py").write_text("import lib\n")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "README.md").write_text("docs\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "first")
    return tmp_path


def test_the_working_tree_digest_equals_its_commits_until_the_code_changes(repo):
    first = git(repo, "rev-parse", "HEAD")
    assert code_digest(repo) == code_digest(repo, first) and len(code_digest(repo)) == 64
    (repo / "README.md").write_text("other docs\n")  # not code: the digest stays
    assert code_digest(repo) == code_digest(repo, first)
    (repo / "src/lib.py").write_text("A = 2\n")  # uncommitted edit: differs from the commit
    assert code_digest(repo) != code_digest(repo, first)
    git(repo, "commit", "-qam", "second")
    assert code_digest(repo) == code_digest(repo, "HEAD") != code_digest(repo, first)
    (repo / "src/new.py").write_text("")  # an untracked module counts too
    assert code_digest(repo) != code_digest(repo, "HEAD")


def test_no_git_means_no_digest(tmp_path):
    assert code_digest(tmp_path) is None


def test_params_differences_flatten_and_ignore():
    made = flat_params({"train": {"lr": 0.1, "augment_p": 0.5}, "seeds": [0]})
    assert (
        params_differences(
            made, flat_params({"train": {"lr": 0.1, "augment_p": 0.9}, "seeds": [0]}), ("train.augment_p",)
        )
        == []
    )
    assert params_differences(made, flat_params({"train": {"lr": 0.2, "augment_p": 0.5}, "seeds": [0, 1]})) == [
        "seeds",
        "train.lr",
    ]


def exp_show(rev_a: str, rev_b: str, lr_b: float = 0.1) -> list[dict]:
    def revision(name, rev, p, lr):
        return {
            "name": name,
            "rev": rev,
            "data": {"params": {"params.yaml": {"data": {"train": {"augment_p": p, "lr": lr}}}}},
        }

    return [
        {"rev": "workspace", "data": {}},
        {
            "rev": rev_a,
            "name": "main",
            "data": revision("main", rev_a, 0.5, 0.1)["data"],
            "experiments": [
                {"revs": [revision("exp-a", rev_a, 0.0, 0.1)]},
                {"revs": [revision("exp-b", rev_b, 1.0, lr_b)]},
            ],
        },
    ]


def test_a_sweep_is_current_only_with_this_code_and_these_params(repo):
    first = git(repo, "rev-parse", "HEAD")
    shown = exp_show(first, first)
    provenance = sweep_provenance(shown, "train.augment_p", None, repo, {"main", "exp-a", "exp-b"})
    assert provenance["experiments"] == {"main": first, "exp-a": first, "exp-b": first}
    assert provenance["params"] == {"train.lr": 0.1} and provenance["params_vary"] == []
    current = {"train.augment_p": 0.7, "train.lr": 0.1}
    assert sweep_staleness(provenance, code_digest(repo), current) is None
    assert (
        sweep_staleness(provenance, code_digest(repo), {**current, "train.lr": 0.3})
        == "made with other params: train.lr"
    )
    assert sweep_staleness(None, code_digest(repo), current).startswith("no provenance recorded")
    assert sweep_staleness(provenance, None, current).startswith("this run's code cannot be identified")
    (repo / "src/lib.py").write_text("A = 3\n")
    assert (
        sweep_staleness(provenance, code_digest(repo), current) == f"made with other code (experiments at {first[:7]})"
    )
    mixed = sweep_provenance(
        exp_show(first, first, lr_b=0.2), "train.augment_p", None, repo, {"main", "exp-a", "exp-b"}
    )
    assert mixed["params_vary"] == ["train.lr"] and "train.lr" not in mixed["params"]
    assert sweep_staleness(mixed, code_digest(repo, first), current) == "its experiments differ in train.lr"
