"""Tests of newsletter.content; fixture files live under tests/fixtures/."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FEEDS = FIXTURES / "feeds"
POSTS = FIXTURES / "posts"
