"""Headless Chromium for the tests: screenshot a page and read its DOM after scripts ran."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")


def render(url: str, screenshot: Path, wait_ms: int = 5000, window: str = "1280,1600") -> str:
    """Load url in a `window` (width,height) window, save a screenshot, and return the DOM as serialized after
    `wait_ms` of scripts (laid out at that width)."""
    with tempfile.TemporaryDirectory() as profile:
        common = [
            chromium(),
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={wait_ms}",
            f"--window-size={window}",
        ]
        subprocess.run(
            [*common, f"--screenshot={screenshot}", url],
            capture_output=True,
            timeout=120,
            check=True,
        )
        dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)
    return dom.stdout


def png_is_not_blank(path: Path) -> bool:
    from PIL import Image

    with Image.open(path) as image:
        extrema = image.convert("L").getextrema()
    return image.size[0] > 100 and extrema[0] != extrema[1]
