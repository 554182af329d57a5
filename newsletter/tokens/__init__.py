"""API tokens and the audit log: least-privilege bearer tokens for the HTTP API (made with
`newsletter token create`, shown once, kept as a hash), their scopes, and a record of every
write made with them (`newsletter audit`)."""
