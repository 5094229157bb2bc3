"""Real servers on loopback (OpenSearch, Prometheus, PostgreSQL, an OIDC issuer, kube-apiserver, our own processes)
and the sample platform they are fed with.

Both `tests/` and `bench/` start these, so they live in neither: `bench` must not import `tests` (the import
contracts in pyproject.toml enforce it), and nothing under `domain`, `adapters`, `collectors`, `observer` or
`alert_rules` may import this package.
"""
