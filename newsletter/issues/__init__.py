"""Issues: one edition of the newsletter (a post or a digest) addressed to a list."""
