"""Checklist item 17: SpamAssassin (Debian's package, local tests only, no Bayes) finds
nothing wrong with a generated post issue and digest. Skips only when the binary is absent;
CI installs it (apt-get install -y spamassassin)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from .samples import RECIPIENTS

SPAMASSASSIN = shutil.which("spamassassin")
FORBIDDEN = re.compile(
    r"^(MIME_HTML_ONLY|MISSING_|INVALID_|MPART_ALT_DIFF|HTML_IMAGE_ONLY_|EMPTY_MESSAGE)"
)


@pytest.mark.skipif(SPAMASSASSIN is None, reason="spamassassin is not installed")
@pytest.mark.parametrize("kind", ["post", "digest"])
def test_spamassassin_finds_nothing_wrong(kind, prepared, prepared_digest):
    issue = prepared if kind == "post" else prepared_digest
    message = issue.message_bytes(RECIPIENTS[1])  # a non-ASCII name
    result = subprocess.run(
        [SPAMASSASSIN, "-L", "-t", "-x", "--cf=use_bayes 0"],
        input=message,
        capture_output=True,
        timeout=120,
        check=False,
    )
    report = result.stdout.decode("utf-8", "replace")
    status = re.search(
        r"^X-Spam-Status: (\w+), score=(-?[\d.]+) .*?tests=(.*?)\s+autolearn", report, re.M | re.S
    )
    assert status, report[-2000:] + result.stderr.decode("utf-8", "replace")
    verdict, score, tests = status.group(1), float(status.group(2)), status.group(3)
    rules = [t for t in re.split(r"[\s,]+", tests) if t and t != "none"]
    assert verdict == "No"
    assert score < 2.0, rules
    assert not [r for r in rules if FORBIDDEN.match(r)], rules
