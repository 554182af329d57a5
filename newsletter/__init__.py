"""newsletter: a self-hosted, CLI-first email newsletter dispatcher."""
