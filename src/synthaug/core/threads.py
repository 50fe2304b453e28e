"""How torch's OpenMP threads wait: briefly spinning, then sleeping, so a busy core does not stall them.

libgomp (torch's OpenMP on Linux) spins about 300,000 times before a waiting thread sleeps. Beside a busy core the
spinning thread takes the core its partner needs; a short spin yields it, at a small cost alone (docs/benchmarks.md,
"A stage beside a busy core"). The thread count is unchanged, so results are too.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

SPIN_BEFORE_SLEEP = "1000"  # microseconds of spinning; 3,000 still stalled beside a busy core
WAIT_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def yield_when_waiting(environ: MutableMapping[str, str] = os.environ) -> None:
    """Shorten OpenMP's spin unless the user chose a wait setting. Must run before torch loads libgomp."""
    if not any(name in environ for name in WAIT_SETTINGS):
        environ["GOMP_SPINCOUNT"] = SPIN_BEFORE_SLEEP
