"""The stage runner: what every stage entry point shares, logging setup and one-line errors instead of tracebacks."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from synthaug.core.errors import UserError
from synthaug.core.param_rules import check_stage_rules


def run_stage(
    name: str, main: Callable[[], str], summary_stream: TextIO | None = None, *, exit_process: bool = False
) -> None:
    """Run a stage's main() after the cross-section params rules that concern it; print its one-line summary with the
    wall time, or a one-line error. With exit_process, a stage that succeeded ends its process at once
    (exit_without_teardown)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # SIGTERM (queue cancel, job schedulers) unwinds like Ctrl-C, so temporary outputs are removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    # A stage started in the background (nohup, `&`, some job runners) inherits SIGINT ignored: Ctrl-C must still
    # unwind.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    start = time.perf_counter()
    try:
        if not {"-h", "--help"} & set(sys.argv[1:]):  # help works outside a repository
            check_stage_rules(name)
        summary = main()
    except UserError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"{name}: done in {time.perf_counter() - start:.1f}s: {summary}", file=summary_stream or sys.stdout)
    if exit_process:
        exit_without_teardown()


def exit_without_teardown() -> None:
    """Exit with status 0 after the atexit handlers, skipping the interpreter's teardown of torch, transformers and
    MLflow (seconds per stage). Returns instead while a non-daemon thread runs, so Python joins it as usual."""
    others = [thread for thread in threading.enumerate() if thread is not threading.main_thread()]
    if any(thread.is_alive() and not thread.daemon for thread in others):
        return
    atexit._run_exitfuncs()  # logging.shutdown, multiprocessing and MLflow flush here
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)
