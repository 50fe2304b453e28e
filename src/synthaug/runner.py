"""The stage runner: what every stage entry point shares, logging setup and one-line errors instead of tracebacks."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import TextIO

from synthaug.errors import UserError


def run_stage(name: str, main: Callable[[], str], summary_stream: TextIO | None = None) -> None:
    """Run a stage's main(); print its one-line summary with the wall time, or a one-line error."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # SIGTERM (queue cancel, job schedulers) unwinds like Ctrl-C, so temporary outputs are removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    # A stage started in the background (nohup, `&`, some job runners) inherits SIGINT ignored: Ctrl-C must still
    # unwind.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    start = time.perf_counter()
    try:
        summary = main()
    except UserError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"{name}: done in {time.perf_counter() - start:.1f}s: {summary}", file=summary_stream or sys.stdout)


def add_entry_arguments(parser: argparse.ArgumentParser) -> None:
    """The (classifier, variant, seed) entry of the experiment matrix that dvc.yaml passes in."""
    parser.add_argument("--classifier", required=True, help="experiment.classifiers entry: vit, cnn or timm")
    parser.add_argument("--variant", required=True, help="baseline, oversampled, full or synthetic_<generator>")
    parser.add_argument("--seed", type=int, required=True, help="experiment.seeds entry")


def entry_name(args: argparse.Namespace) -> str:
    """`<classifier>-<variant>`: the run name's variant part and the output folder prefix."""
    return f"{args.classifier}-{args.variant}"


def entry_tags(args: argparse.Namespace) -> dict[str, str]:
    return {"classifier": args.classifier, "variant": args.variant, "seed": str(args.seed)}
