"""Step files for the sequence tests, and the fixtures they share (SMTP, web, daemon)."""

from __future__ import annotations

from pathlib import Path

from tests.delivery.conftest import smtp_server, tls_files  # noqa: F401  (fixtures)
from tests.delivery.test_daemon import _no_daemon_outlives_its_test  # noqa: F401  (fixture)
from tests.web.conftest import web  # noqa: F401  (fixture)

WELCOME = """---
subject: Welcome, here are my five best essays
preheader: Start with these.
---
Thank you for confirming. Start with [the pricing essay](https://founder.example.com/pricing/).
"""
FOLLOW_UP = """---
subject: A follow-up, three days later
---
How are you finding the essays?
"""


def step_file(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path
