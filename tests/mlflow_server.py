"""A real `mlflow server` for the tests, on 127.0.0.1, answering /health before the test goes on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def mlflow_server(*options: str, env: dict[str, str] | None = None, workers: int = 1) -> Iterator[str]:
    """`mlflow server <options>` (the store and artifact flags); yields its base URL, stops it on leaving."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", *options, "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--workers", str(workers)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"mlflow server exited during start:\n{server.stderr.read()}")
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not answer /health within 120 s")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
