"""Start-up benchmark: how long the CLI takes before it does anything, as ratios to plain
imports measured in the same run (this machine's speed varies 3x from hour to hour).

    python bench/startup.py [--runs 15]

Prints the median wall time of each command (a fresh interpreter each run) and the ratios the
issue sets as bars: `newsletter --version` and `--help` against `python -c "import typer"`,
`newsletter subscriber list` on an empty SQLite store against `python -c "import typer,
sqlalchemy"`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "newsletter"]


def median_time(cmd: list[str], runs: int, cwd: Path) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode().strip()}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        subprocess.run([*CLI, "init"], cwd=cwd, capture_output=True, check=True)
        rows = [
            ("python -c 'import typer'", [sys.executable, "-c", "import typer"]),
            ("python -c 'import typer, sqlalchemy'",
             [sys.executable, "-c", "import typer, sqlalchemy"]),
            ("newsletter --version", [*CLI, "--version"]),
            ("newsletter --help", [*CLI, "--help"]),
            ("newsletter subscriber list (empty SQLite)", [*CLI, "subscriber", "list"]),
        ]  # fmt: skip
        # interleaved rounds, so a slow moment touches every command alike
        samples: dict[str, list[float]] = {label: [] for label, _ in rows}
        for _ in range(args.runs):
            for label, cmd in rows:
                samples[label].append(median_time(cmd, 1, cwd))
    med = {label: statistics.median(v) for label, v in samples.items()}
    for label, value in med.items():
        print(f"{label:<45} {value * 1000:7.0f} ms")
    typer_alone = med["python -c 'import typer'"]
    with_sqla = med["python -c 'import typer, sqlalchemy'"]
    print(f"--version ÷ import typer            = {med['newsletter --version'] / typer_alone:.2f}"
          "  (bar 1.5)")  # fmt: skip
    print(f"--help ÷ import typer               = {med['newsletter --help'] / typer_alone:.2f}"
          "  (bar 1.5)")  # fmt: skip
    ratio = med["newsletter subscriber list (empty SQLite)"] / with_sqla
    print(f"subscriber list ÷ import typer, sqlalchemy = {ratio:.2f}  (bar 1.5)")


if __name__ == "__main__":
    main()
