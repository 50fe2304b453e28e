"""Atomic output writing: a stage killed midway never leaves a complete-looking file or folder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from synthaug.core.errors import DiskSpaceError


@contextmanager
def atomic_path(target: str | Path, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `target`; move it into place only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.tmp-"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent, suffix=target.suffix)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        # mkstemp/mkdtemp create owner-only entries; give the output the permissions a plain write would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, (0o777 if directory else 0o666) & ~umask)
        if directory and target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_metrics(headline: str | Path, detail: str | Path, record: dict[str, Any], keys: Iterable[str]) -> None:
    """Split a record: its headline `keys` go to `headline` (a DVC metrics file, so `dvc metrics show` and
    `dvc metrics diff` fit a terminal), the rest (per-class tables, counts, qualifiers) to `detail` (a plain
    output the report reads). read_metrics joins them again."""
    keys = [key for key in keys if key in record]
    write_json(detail, {key: value for key, value in record.items() if key not in keys})
    write_json(headline, {key: record[key] for key in keys})


def read_metrics(headline: str | Path, detail: str | Path) -> dict[str, Any]:
    """The record write_metrics split."""
    return {**read_json(headline), **read_json(detail)}


def redact_url(value: Any) -> Any:
    """A URL with its password replaced by ***, so that it can be printed or logged; anything else as it is."""
    if not isinstance(value, str) or "://" not in value:
        return value
    parts = urlsplit(value)
    if parts.password is None:
        return value
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def fingerprint(payload: Any) -> str:
    """A digest of everything that decides a result; resumable work from other inputs is discarded."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def work_folder(output: str | Path) -> Path:
    """Hidden sibling of a stage output where resumable state lives until the output is complete."""
    output = Path(output)
    return output.parent / f".{output.name}.partial"


def ensure_free_space(path: str | Path, needed_bytes: int, what: str, margin: float = 1.1) -> None:
    """Fail early, naming the amount, if the filesystem holding `path` has less than needed * margin free."""
    probe = Path(path).resolve()
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    needed = int(needed_bytes * margin)
    if free < needed:
        raise DiskSpaceError(
            f"{what} needs about {needed / 2**20:.1f} MiB free in {probe}, only {free / 2**20:.1f} MiB are: free "
            f"some space "
            "(dvc gc removes unused cache entries) or move the DVC cache (dvc cache dir)"
        )


def rows_csv(rows: list[dict[str, Any]]) -> str:
    """A list of flat dicts as CSV (columns in first-seen order), the format DVC plots read."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    lines = [",".join(columns)] + [",".join(str(row.get(c, "")) for c in columns) for row in rows]
    return "\n".join(lines) + "\n"
