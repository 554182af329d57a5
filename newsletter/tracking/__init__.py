"""Engagement: privacy-first click (and, when asked, open) tracking.

``tokens`` signs what a tracked URL names (an issue's link and the message it is in, never a
URL); ``links`` rewrites an issue's links once, when it is prepared; ``robots`` tells
machines from people, each rule counted apart; ``recorder`` batches events off the web
service's request path. The redirector's routes are in newsletter/web/pages/track.py.
"""
