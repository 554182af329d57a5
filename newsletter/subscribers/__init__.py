"""Subscribers: validation, the CSV importer and exporter, and the subscriber use cases."""
