"""The dependency rule is enforced: `lint-imports` (import-linter, contracts in
pyproject.toml) passes on the package and fails once a store module imports delivery."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}  # the copy, not the installed package
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_contracts_hold_and_a_store_module_importing_delivery_breaks_them(tmp_path) -> None:
    shutil.copytree(ROOT / "newsletter", tmp_path / "newsletter",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    kept = _lint(tmp_path)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "Contracts: 2 kept, 0 broken." in kept.stdout

    with (tmp_path / "newsletter" / "store" / "deliveries.py").open("a") as fh:
        fh.write("\nfrom ..delivery import ledger  # noqa: E402\n")
    broken = _lint(tmp_path)
    assert broken.returncode != 0
    assert "newsletter.store.deliveries -> newsletter.delivery.ledger" in broken.stdout
    assert "Interfaces above capabilities above the store" in broken.stdout
