"""Audiences: who an issue goes to beyond its list.

``expression`` reads the segment language (docs/marketers.md, "Segments") into a small tree;
``compile`` turns that tree into a SQLAlchemy condition on the subscribers table (bound
parameters only); ``rules`` turns an issue's ``audience_rule`` (segment, --where, exclusions,
resends) into one condition, the one the ledger is filled with and ``issue show`` counts.
"""
