"""/api/v1: the HTTP API with scoped tokens (docs/api.md)."""
