"""Where pretrained weights come from: a local folder or a Hub repository, which files of it are loaded, and the
commit they came from.

Only what `from_pretrained` reads is fetched: configs, tokenizers and safetensors weights, the fp16 variant
where the repository has one. The same patterns drive `synthaug download` and the `hf download` advice.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from synthaug.core.errors import ModelLoadError

CONFIG_PATTERNS = ("*.json", "*.txt")
FP16_PATTERNS = ("*.fp16.safetensors", "*.fp16-*.safetensors")
# diffusers' and transformers' weight files: whole, or sharded as <name>-00001-of-00002.safetensors.
FULL_PRECISION_PATTERNS = (
    "*diffusion_pytorch_model.safetensors",
    "*diffusion_pytorch_model-*-of-*.safetensors",
    "*model.safetensors",
    "*model-*-of-*.safetensors",
)
_FP16_FILE = re.compile(r"\.fp16(-\d+-of-\d+)?\.safetensors$")
# huggingface_hub writes one of these per file it downloads into --local-dir; its first line is the commit.
LOCAL_DIR_METADATA = Path(".cache/huggingface/download")


@dataclass(frozen=True)
class Weights:
    """A model's files on disk, the variant to load and the Hub commit they came from (None: not known)."""

    source: str
    folder: Path
    variant: str | None
    commit: str | None

    def provenance(self) -> dict[str, str | None]:
        return {"source": self.source, "commit": self.commit, "variant": self.variant or "full precision"}


def has_fp16_variant(files: list[str]) -> bool:
    return any(_FP16_FILE.search(name) for name in files)


def include_patterns(files: list[str]) -> list[str]:
    """The globs that fetch what `from_pretrained` loads from a repository holding `files`."""
    weights = FP16_PATTERNS if has_fp16_variant(files) else FULL_PRECISION_PATTERNS
    return [*CONFIG_PATTERNS, *weights]


def matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def download_advice(source: str, revision: str | None, key: str) -> str:
    """A command of the locked huggingface_hub that fetches only the files loaded (the fp16 ones)."""
    include = " ".join(shlex.quote(p) for p in (*CONFIG_PATTERNS, *FP16_PATTERNS))
    pinned = f" --revision {shlex.quote(revision)}" if revision else ""
    return (
        f"`synthaug download DIR` fetches every configured model; for this one alone: "
        f"hf download {source}{pinned} --include {include} --local-dir DIR, then set {key}=DIR"
    )


def local_commit(folder: Path) -> str | None:
    """The commit of a folder filled by `hf download --local-dir`, or of a Hub cache snapshot; None otherwise."""
    for metadata in sorted((folder / LOCAL_DIR_METADATA).rglob("*.metadata")):
        commit = metadata.read_text(encoding="utf-8").split("\n", 1)[0].strip()
        if re.fullmatch(r"[0-9a-f]{40}", commit):
            return commit
    if folder.parent.name == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", folder.name):
        return folder.name
    return None


def local_files(folder: Path) -> list[str]:
    return [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]


def is_repo_id(source: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(source)
    except HFValidationError:
        return False
    return source.count("/") == 1


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """What "not downloaded here, and the Hub cannot give it" raises: the advice to download applies to these only
    (an HTTP error covers a Hub that is down and a gated repository without a token)."""
    import httpx2
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    return (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
        httpx2.TransportError,
        ConnectionError,
        TimeoutError,
    )


def snapshot(source: str, revision: str | None, local_dir: Path | None = None, endpoint: str | None = None) -> Path:
    """Fetch what is loaded of a Hub repository (into the Hub cache, or `local_dir`); its folder. Offline, the
    cached snapshot."""
    from huggingface_hub import HfApi, snapshot_download

    try:
        files = HfApi(endpoint=endpoint).list_repo_files(source, revision=revision)
    except unreachable_errors():
        if local_dir is not None:
            raise
        return Path(snapshot_download(source, revision=revision, local_files_only=True))
    return Path(
        snapshot_download(
            source, revision=revision, allow_patterns=include_patterns(files), local_dir=local_dir, endpoint=endpoint
        )
    )


@functools.lru_cache(maxsize=16)  # the device check and the load resolve the same models once per process
def resolve_weights(source: str, revision: str | None, key: str) -> Weights:
    """A local folder as it is, or a Hub repository fetched (or found in the cache); a one-line error otherwise."""
    folder = Path(source).expanduser()
    if not folder.is_dir():
        if not is_repo_id(source):
            raise ModelLoadError(f"{key}={source}: no such folder, nor a Hub repository id (owner/name)")
        try:
            folder = snapshot(source, revision)
        except unreachable_errors() as exc:
            raise ModelLoadError(
                f"cannot load {key}={source}: not downloaded here and the Hugging Face Hub cannot give it "
                f"({type(exc).__name__}). {download_advice(source, revision, key)}"
            ) from exc
    files = local_files(folder)
    if not any(name.endswith(".safetensors") for name in files):
        pickled = [name for name in files if name.endswith((".bin", ".ckpt", ".pt", ".pth"))]
        why = f" (only pickled ones such as {pickled[0]}, never loaded: they can run code)" if pickled else ""
        raise ModelLoadError(f"{key}={source}: {folder} holds no safetensors weights{why}")
    commit = local_commit(folder)
    if revision is not None and re.fullmatch(r"[0-9a-f]{40}", revision) and commit not in (None, revision):
        raise ModelLoadError(f"{key}={source}: its files are of commit {commit}, the params pin {revision}")
    return Weights(source, folder, "fp16" if has_fp16_variant(files) else None, commit)
