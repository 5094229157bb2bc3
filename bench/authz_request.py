"""Authorization's cost per request: one logs query through the public app, three ways in the same run.

- off: authentication and authorization off (JWT_DISABLED): the baseline;
- token only: a real ES256 token checked against a real issuer's JWKS, every request allowed (AllowAll);
- token + policy: the same, decided by the embedded Casbin PDP holding 10,000 policy lines (bench/authz_pdp.py's
  generator), with the caller's group bound to the queried component.

"authorization overhead" is token + policy minus token only (the PDP's share); the total is against off. The
app is driven in process over ASGI, so the figures carry no network noise.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from access.authn import Authenticator
from access.casbin_pdp import CasbinAuthorizer
from access.model import AllowAll, Authorizer
from access.policy_sources import StaticPolicySource
from access.resources import scope_path
from access.settings import AuthSettings
from adapters.embedded.backend import EmbeddedBackend
from bench import authz_pdp
from bench.harness import percentile, report
from devservers.oidc import start_oidc_issuer
from devservers.sample import BASE_NS, identity
from domain.model import LogRecord
from domain.timeutil import format_rfc3339
from observer.app import create_public_app
from observer.service import QueryService

GROUP = "bench-cart-team"
BODY = {
    "startTime": format_rfc3339(BASE_NS - 60 * 10**9),
    "endTime": format_rfc3339(BASE_NS + 60 * 10**9),
    "searchScope": {"namespace": "acme", "project": "shop", "component": "cart", "environment": "prod"},
    "limit": 10,
}


def _policy() -> list[tuple[str, ...]]:
    rules = authz_pdp.policy()
    rules.append(("p", "binding:bench-cart", scope_path("acme", "shop", "cart"), "logs:view", "*", "allow"))
    rules.append(("g", f"groups:{GROUP}", "binding:bench-cart"))
    return rules


def _client(
    backend: EmbeddedBackend, auth: AuthSettings, authorizer: Authorizer, token: str
) -> tuple[httpx.AsyncClient, Authenticator | None]:
    """A client of a fresh public app, and that app's authenticator (None with authentication off), which the
    app owns and the caller closes."""
    service = QueryService(
        backend.registry, logs=backend, events=backend, traces=backend, metrics=backend, authorizer=authorizer
    )
    app = create_public_app(service, "", auth)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://observer", headers=headers)
    return http, app.state.authenticator


async def _request(http: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    response = await http.post("/api/v1/logs/query", json=BODY)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.text
    return elapsed


async def _run(repeat: int, rounds: int = 10) -> dict:
    """The three variants take turns, a slice of requests each per round, so a busy moment of the machine
    falls on all of them alike."""
    issuer = start_oidc_issuer()
    try:
        key = issuer.new_key("ES256")
        issuer.publish(key)
        token = issuer.mint(key, groups=[GROUP], exp=int(time.time()) + 3600)
        with tempfile.TemporaryDirectory() as tmp:
            backend = EmbeddedBackend(Path(tmp) / "data")
            await backend.write(
                batch_id="bench",
                logs=[LogRecord(BASE_NS + i, f"line {i}", identity("cart"), level="INFO") for i in range(100)],
            )
            on = AuthSettings(jwks_url=issuer.jwks_url, issuer=issuer.url, audiences=("observer-api",))
            casbin = CasbinAuthorizer(StaticPolicySource(_policy()))
            opened = {
                "off": _client(backend, AuthSettings.disabled(), AllowAll(), ""),
                "token_only": _client(backend, on, AllowAll(), token),
                "token_policy": _client(backend, on, casbin, token),
            }
            clients = {name: http for name, (http, _) in opened.items()}
            samples: dict[str, list[float]] = {name: [] for name in clients}
            for http in clients.values():  # warm up: JWKS fetched, caches filled
                for _ in range(100):
                    await _request(http)
            for _ in range(rounds):
                for name, http in clients.items():
                    for _ in range(repeat // rounds):
                        samples[name].append(await _request(http))
            for http, authenticator in opened.values():
                await http.aclose()
                if authenticator is not None:
                    await authenticator.close()
            backend.close()
        results: dict = {
            name: {
                "p50_ms": round(percentile(values, 0.5), 3),
                "p99_ms": round(percentile(values, 0.99), 3),
                "n": len(values),
            }
            for name, values in samples.items()
        }
        results["policy_lines"] = casbin.snapshot.size
        return results
    finally:
        issuer.stop()


def run(repeat: int = 3_000) -> None:
    results = asyncio.run(_run(repeat))
    off, token, policy = results["off"], results["token_only"], results["token_policy"]
    pdp = round(policy["p50_ms"] - token["p50_ms"], 3), round(policy["p99_ms"] - token["p99_ms"], 3)
    total = round(policy["p50_ms"] - off["p50_ms"], 3), round(policy["p99_ms"] - off["p99_ms"], 3)
    report(
        "authz_request",
        [
            ("logs query, auth off p50 / p99", f"{off['p50_ms']} / {off['p99_ms']} ms", "baseline"),
            ("with token check p50 / p99", f"{token['p50_ms']} / {token['p99_ms']} ms", ""),
            (
                f"with token + {results['policy_lines']} policy lines p50 / p99",
                f"{policy['p50_ms']} / {policy['p99_ms']} ms",
                "",
            ),
            ("authorization (PDP) overhead p50 / p99", f"{pdp[0]} / {pdp[1]} ms", "<= 1 ms p50"),
            ("authn + authz overhead p50 / p99", f"{total[0]} / {total[1]} ms", ""),
        ],
        results,
    )


if __name__ == "__main__":
    run()
