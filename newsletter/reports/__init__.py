"""Reports a marketer reads: one issue's (`issue report`) and the list's over time (`stats`).

``issue`` and ``stats`` gather what a report shows in the caller's session and return plain
values (their JSON forms are what `--json` prints); ``page`` turns those into one HTML
file that opens offline, its charts drawn by ``charts`` (matplotlib, inline SVG).

matplotlib is the optional ``reports`` extra and heavy to import: only ``charts`` imports
it, and ``page`` imports ``charts`` when a page is drawn, so the commands that print text
never load it. Without the extra, drawing a page raises NewsletterError saying how to
install it.
"""
