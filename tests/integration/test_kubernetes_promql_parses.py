"""The real Prometheus of the session parses every query of the `kubernetes` scheme, hostile scope values
included (the text itself is read in tests/unit/test_kubernetes_promql.py)."""

from __future__ import annotations

import httpx

from tests.unit.test_kubernetes_promql import BENIGN, all_queries, hostile_scopes


def test_prometheus_parses_every_query(prometheus_server) -> None:
    """An instant query at t=0 of each: a parse error is a 400."""
    scopes = [BENIGN, *hostile_scopes()]
    queries = [q for scope in scopes for q in all_queries(scope).values()]
    with httpx.Client(base_url=prometheus_server.url, timeout=30) as client:
        for query in queries:
            response = client.post("/api/v1/query", data={"query": query, "time": "0"})
            assert response.status_code == 200, (query, response.text)
