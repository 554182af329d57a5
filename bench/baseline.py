"""Baselines the bench scripts print beside their figures, measured in the same run (the
machine's speed varies by 3x from hour to hour): the time of `python -c "import typer"`, part
of every CLI start."""

from __future__ import annotations

import subprocess
import sys
import time


def typer_import(runs: int = 3) -> float:
    """Seconds of `python -c "import typer"` in a fresh process, the best of ``runs``."""
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import typer"], check=True)
        best = min(best, time.perf_counter() - began)
    return best
