"""The stage runner: what every stage entry point shares, logging setup and one-line errors instead of tracebacks."""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import TextIO

from synthaug.core.errors import UserError
from synthaug.core.params import check_stage_rules


def run_stage(name: str, main: Callable[[], str], summary_stream: TextIO | None = None) -> None:
    """Run a stage's main() after the cross-section params rules that concern it; print its one-line summary with the
    wall time, or a one-line error."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # SIGTERM (queue cancel, job schedulers) unwinds like Ctrl-C, so temporary outputs are removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    # A stage started in the background (nohup, `&`, some job runners) inherits SIGINT ignored: Ctrl-C must still
    # unwind.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    start = time.perf_counter()
    try:
        check_stage_rules(name)
        summary = main()
    except UserError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"{name}: done in {time.perf_counter() - start:.1f}s: {summary}", file=summary_stream or sys.stdout)
