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


def count_seconds(url: str, table: str) -> float:
    """Seconds of one plain ``SELECT count(*) FROM table`` through the driver."""
    from newsletter.store import connect

    engine = connect(url)
    try:
        with engine.connect() as conn:
            began = time.perf_counter()
            conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()
            return time.perf_counter() - began
    finally:
        engine.dispose()


def site_config(url: str) -> str:
    """The part of a bench's newsletter.toml every bench writes the same: the site, the
    sender and the database."""
    return f"""
[site]
name = "Field Notes"
base_url = "https://news.example.com"
postal_address = "Field Notes AB, Sveavägen 1, 111 57 Stockholm, Sweden"
[sender]
from_name = "Field Notes"
from_address = "letters@news.example.com"
[database]
url = "{url}"
"""
