"""newsletter: a self-hosted, CLI-first email newsletter dispatcher."""

__version__ = "0.1.0"  # as in pyproject.toml (a test keeps the two equal)
