"""DKIM (RFC 6376, Ed25519 per RFC 8463): keys (`newsletter dkim keygen` and the DNS record to
publish), signing every message that leaves (relaxed/relaxed, the headers that matter; RSA and
Ed25519 side by side when both keys are configured) and checking the published record
(`newsletter check`).

dkimpy does the canonicalization and the verifying (tests); the signature itself is made with
``cryptography`` (OpenSSL), several times faster than dkimpy's own RSA in Python. The
per-process work (parsing the keys, the tag list) is done once; per message only what depends
on it: the body hash (the body is personal: unsubscribe and tracked links) and the signature.
"""
