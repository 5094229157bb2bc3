"""The internal port (alert-rule CRUD, the alert webhook): open by default as upstream, and, on request, behind a
shared bearer token and/or mutual TLS (observer/auth/internal.py).

Everything runs over real servers on loopback: `observer up` as its own process for the default and the token
(so the environment variables, the wiring in runtime.py and the logs are the shipped ones), and the internal app
on uvicorn with real TLS for mutual TLS, with a CA, server and client certificates made for this run. A real
Alertmanager posts to the webhook with the README's `http_config.authorization` snippet.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devservers.local import free_port
from devservers.observer import observer_up
from devservers.tls_proxy import Ca, make_ca, serving_tls
from observer.app import create_internal_app
from observer.auth.internal import INVALID_MESSAGE, MISSING_MESSAGE, InternalPortConfigError, InternalTls
from observer.config import Settings

pytestmark = pytest.mark.integration

TOKEN = f"internal-{uuid.uuid4().hex}"  # distinctive, so any leak into a log is unmistakable
WRONG = TOKEN[:-1] + ("0" if TOKEN[-1] != "0" else "1")  # same length, one character off
WEBHOOK = "/api/v1alpha1/alerts/webhook"
RULES = "/api/v1alpha1/alerts/sources/log/rules"
NAMESPACE, PROJECT_UID, COMPONENT_UID, ENV_UID = "acme", str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
WINDOW = {"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-20T00:00:00Z"}

REGISTRY = f"""
namespaces:
  - name: {NAMESPACE}
    environments: [{{name: prod, uid: {ENV_UID}}}]
    projects:
      - name: shop
        uid: {PROJECT_UID}
        components: [{{name: cart, uid: {COMPONENT_UID}}}]
"""


def rule_body(name: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "projectUid": PROJECT_UID,
            "environmentUid": ENV_UID,
            "componentUid": COMPONENT_UID,
        },
        "source": {"type": "log", "query": "ERROR"},
        "condition": {"enabled": True, "window": "5m", "interval": "1m", "operator": "gt", "threshold": 10},
    }


def unauthorized(response: httpx.Response, message: str, challenge: str) -> bool:
    return (
        response.status_code == 401
        and response.json() == {"title": "unauthorized", "errorCode": "", "message": message}
        and response.headers["www-authenticate"] == challenge
    )


# ------------------------------------------------------------------------------------------------ default


def test_by_default_the_internal_port_is_open_as_upstream(tmp_path: Path) -> None:
    with observer_up(tmp_path / "data") as observer:
        empty = httpx.post(observer.internal + WEBHOOK, content=b"", timeout=10)
        missing = httpx.get(f"{observer.internal}{RULES}/nope", timeout=10)
    # The request reached the handler: its own validation answers, not an authentication gate.
    assert (empty.status_code, empty.json()["errorCode"]) == (400, "INVALID_REQUEST_BODY")
    assert (missing.status_code, missing.json()["errorCode"]) == (404, "NOT_FOUND")


# -------------------------------------------------------------------------------------------- shared secret


def test_with_a_token_every_route_but_health_needs_it_and_it_is_never_logged(tmp_path: Path) -> None:
    log_file = tmp_path / "observer.log"
    (tmp_path / "registry.yaml").write_text(REGISTRY)
    env = {"OBSERVER_INTERNAL_TOKEN": TOKEN, "LOG_LEVEL": "debug"}  # debug: the most a log could ever say
    with observer_up(
        tmp_path / "data", "--registry", str(tmp_path / "registry.yaml"), log_file=log_file, env=env
    ) as observer:
        url = observer.internal
        health = httpx.get(f"{url}/health", timeout=10)
        none = httpx.post(url + WEBHOOK, json={"ruleName": "x", "ruleNamespace": NAMESPACE}, timeout=10)
        wrong = httpx.post(url + WEBHOOK, content=b"", headers={"Authorization": f"Bearer {WRONG}"}, timeout=10)
        basic = httpx.post(url + WEBHOOK, content=b"", headers={"Authorization": f"Basic {TOKEN}"}, timeout=10)
        two = httpx.post(
            url + WEBHOOK,
            content=b"",
            timeout=10,
            headers=[("Authorization", f"Bearer {TOKEN}"), ("Authorization", f"Bearer {WRONG}")],
        )
        crud_without = httpx.post(url + RULES, json=rule_body("cart-errors"), timeout=10)
        get_without = httpx.get(f"{url}{RULES}/cart-errors", timeout=10)

        authorised = {"Authorization": f"Bearer {TOKEN}"}
        created = httpx.post(url + RULES, json=rule_body("cart-errors"), headers=authorised, timeout=30)
        fetched = httpx.get(f"{url}{RULES}/cart-errors", headers=authorised, timeout=10)
        fired = httpx.post(
            url + WEBHOOK,
            headers=authorised,
            timeout=10,
            json={
                "ruleName": "cart-errors",
                "ruleNamespace": NAMESPACE,
                "alertValue": 12.5,
                "alertTimestamp": "2026-01-10T10:00:00Z",
            },
        )
        lower_scheme = httpx.post(url + WEBHOOK, content=b"", headers={"Authorization": f"bearer {TOKEN}"}, timeout=10)
        public_health = httpx.get(f"{observer.api}/health", timeout=10)

    assert health.status_code == 200 and health.json()["status"] == "healthy"  # probes carry no credentials
    assert unauthorized(none, MISSING_MESSAGE, "Bearer")
    assert unauthorized(wrong, INVALID_MESSAGE, 'Bearer error="invalid_token"')
    assert unauthorized(basic, MISSING_MESSAGE, "Bearer")
    assert unauthorized(two, MISSING_MESSAGE, "Bearer")  # ambiguous credentials are no credentials
    assert unauthorized(crud_without, MISSING_MESSAGE, "Bearer")
    assert unauthorized(get_without, MISSING_MESSAGE, "Bearer")

    assert created.status_code == 201, created.text
    assert fetched.status_code == 200 and fetched.json()["metadata"]["name"] == "cart-errors"
    assert fired.status_code == 200 and fired.json()["message"].startswith("alert acknowledged, alertID: ")
    assert (lower_scheme.status_code, lower_scheme.json()["errorCode"]) == (400, "INVALID_REQUEST_BODY")
    assert public_health.status_code == 200  # the public port is not the token's business

    logged = log_file.read_text()
    assert "internal API: 401 (no bearer token) on POST /api/v1alpha1/alerts/webhook" in logged
    assert "internal API: 401 (wrong bearer token)" in logged
    assert "internal API: bearer token required (OBSERVER_INTERNAL_TOKEN)" in logged
    assert TOKEN not in logged and WRONG not in logged and TOKEN[-12:] not in logged


def alertmanager_config(webhook_url: str, credentials: str) -> str:
    """The README's snippet: Alertmanager's webhook receiver sending the internal token as a bearer token."""
    return f"""
route:
  receiver: observer
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: observer
    webhook_configs:
      - url: {webhook_url}
        send_resolved: false
        http_config:
          authorization:
            type: Bearer
            credentials: {credentials}
"""


NULL_ALERTMANAGER = 'route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n'


def test_alertmanager_with_the_readme_snippet_gets_through(tmp_path: Path, prometheus_server: Any) -> None:
    log_file = tmp_path / "observer.log"
    (tmp_path / "registry.yaml").write_text(REGISTRY)
    rule = f"am-{uuid.uuid4().hex[:8]}"
    env = {"OBSERVER_INTERNAL_TOKEN": TOKEN}
    with observer_up(
        tmp_path / "data", "--registry", str(tmp_path / "registry.yaml"), log_file=log_file, env=env
    ) as observer:
        created = httpx.post(
            observer.internal + RULES, json=rule_body(rule), timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert created.status_code == 201, created.text
        now = datetime.datetime.now(datetime.UTC)
        alert = {
            "labels": {"alertname": rule, "openchoreo_rule_name": rule, "openchoreo_rule_namespace": NAMESPACE},
            "annotations": {"alert_value": "42"},
            "startsAt": now.isoformat(),
        }
        window = {
            "startTime": (now - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "endTime": (now + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        try:
            # A wrong secret first: Alertmanager's deliveries are refused, and say so in the observer's log.
            prometheus_server.configure_alertmanager(alertmanager_config(observer.internal + WEBHOOK, WRONG))
            httpx.post(
                f"{prometheus_server.alertmanager_url}/api/v2/alerts", json=[alert], timeout=10
            ).raise_for_status()
            for _ in range(240):  # Alertmanager sends within group_wait; the bound only guards against a hang
                if "internal API: 401 (wrong bearer token)" in log_file.read_text():
                    break
                time.sleep(0.5)
            assert "internal API: 401 (wrong bearer token)" in log_file.read_text()
            assert alerts_of(observer.api, window) == []
            # The right one: the next delivery of the same alert is recorded.
            prometheus_server.configure_alertmanager(alertmanager_config(observer.internal + WEBHOOK, TOKEN))
            recorded: list[dict[str, Any]] = []
            for _ in range(240):
                recorded = alerts_of(observer.api, window)
                if recorded:
                    break
                time.sleep(0.5)
        finally:
            prometheus_server.configure_alertmanager(NULL_ALERTMANAGER)
    assert [(each["alertValue"], each["metadata"]["alertRule"]["name"]) for each in recorded] == [("42", rule)]
    assert TOKEN not in log_file.read_text() and WRONG not in log_file.read_text()


def alerts_of(api: str, window: dict[str, str]) -> list[dict[str, Any]]:
    answer = httpx.post(
        f"{api}/api/v1alpha1/alerts/query", json=window | {"searchScope": {"namespace": NAMESPACE}}, timeout=10
    )
    answer.raise_for_status()
    return answer.json()["alerts"]


def test_observer_up_refuses_a_short_token(tmp_path: Path) -> None:
    token = "short-secret"
    finished = run_observer_up(tmp_path, {"OBSERVER_INTERNAL_TOKEN": token})
    assert finished.returncode != 0
    assert "OBSERVER_INTERNAL_TOKEN is 12 bytes long; use at least 16" in finished.stderr
    assert token not in finished.stderr  # the refusal names the variable, never the value
    assert not (tmp_path / "data" / "alerts.db").exists()  # refused before any store was opened


def test_a_token_with_a_trailing_newline_is_refused() -> None:
    token = f"{TOKEN}\n"  # `echo $TOKEN | kubectl create secret generic ... --from-file=token=/dev/stdin`
    with pytest.raises(InternalPortConfigError) as refused:
        _settings(internal_token=token).internal_security()
    assert "contains whitespace or control characters (a trailing newline from the Secret?)" in str(refused.value)
    assert TOKEN not in str(refused.value)


def test_a_short_token_is_refused_by_the_app_factory_too() -> None:
    with pytest.raises(InternalPortConfigError, match="at least 16"):
        create_internal_app(token="0123456789abcde")  # 15 bytes


# --------------------------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Pki:
    """The cluster's CA (it signs the server and the trusted client), and a stranger CA with a client of its own."""

    ca: Ca
    server: tuple[Path, Path]
    client: tuple[Path, Path]
    stranger: tuple[Path, Path]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca(directory, "cluster-ca")
    stranger_ca = make_ca(directory, "stranger-ca")
    return Pki(
        ca=ca,
        server=ca.issue(directory, "observer-internal", client=False),
        client=ca.issue(directory, "rule-controller", client=True),
        stranger=stranger_ca.issue(directory, "stranger", client=True),
    )


def client_context(pki: Pki, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    """What a client of the internal port uses: trusts the cluster CA, presents `cert` (or nothing)."""
    context = ssl.create_default_context(cafile=str(pki.ca.path))
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


# ----------------------------------------------------------------------------------------------- mutual TLS


def serving_tls_with(app: Any, tls: InternalTls) -> contextlib.AbstractContextManager[str]:
    """The app served with the internal port's TLS settings (devservers/tls_proxy.py); yields the https URL."""
    return serving_tls(app, tls.certfile, tls.keyfile, tls.client_ca_file, tls.cert_reqs)


def tls12_handshake(url: str, context: ssl.SSLContext) -> str:
    """Runs a TLS 1.2 handshake and returns the version agreed. In TLS 1.2 the server checks the client's
    certificate before it finishes its side, so a refusal fails the handshake itself (in TLS 1.3 the client's
    side completes first and the refusal shows as a connection closed before any HTTP answer: see httpx below).
    asyncio's TLS closes without sending the alert, so a refusal reads as an EOF, not a named alert."""
    host, port = url.removeprefix("https://").split(":")
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            return tls.version() or ""


@pytest.fixture(scope="module")
def mtls_url(pki: Pki) -> Iterator[str]:
    tls = InternalTls(pki.server[0], pki.server[1], pki.ca.path)
    with serving_tls_with(create_internal_app(), tls) as url:
        yield url


def test_mtls_answers_a_client_with_a_certificate_from_the_ca(pki: Pki, mtls_url: str) -> None:
    with httpx.Client(verify=client_context(pki, pki.client), timeout=10) as client:
        assert client.get(f"{mtls_url}/health").json()["status"] == "healthy"
    assert tls12_handshake(mtls_url, client_context(pki, pki.client)) == "TLSv1.2"


@pytest.mark.parametrize("who", ["no certificate", "a certificate from another CA"])
def test_mtls_refuses_the_handshake_without_a_trusted_client_certificate(pki: Pki, mtls_url: str, who: str) -> None:
    cert = None if who == "no certificate" else pki.stranger
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls12_handshake(mtls_url, client_context(pki, cert))
    # Over HTTP (TLS 1.3): no response at all, not even for /health.
    with httpx.Client(verify=client_context(pki, cert), timeout=10) as client:
        with pytest.raises(httpx.TransportError):
            client.get(f"{mtls_url}/health")
    # The refusals cost the server nothing: the trusted client is still served.
    with httpx.Client(verify=client_context(pki, pki.client), timeout=10) as client:
        assert client.get(f"{mtls_url}/health").status_code == 200


def test_tls_without_a_client_ca_serves_https_to_anyone(pki: Pki) -> None:
    with serving_tls_with(create_internal_app(), InternalTls(pki.server[0], pki.server[1])) as url:
        with httpx.Client(verify=client_context(pki, None), timeout=10) as client:
            assert client.get(f"{url}/health").status_code == 200


# --------------------------------------------------------------------------- `observer up` with mTLS and token


def test_observer_up_serves_the_internal_port_over_mtls_with_the_token(tmp_path: Path, pki: Pki) -> None:
    env = {
        "OBSERVER_INTERNAL_TOKEN": TOKEN,
        "OBSERVER_INTERNAL_TLS_CERT_FILE": str(pki.server[0]),
        "OBSERVER_INTERNAL_TLS_KEY_FILE": str(pki.server[1]),
        "OBSERVER_INTERNAL_TLS_CLIENT_CA_FILE": str(pki.ca.path),
    }
    trusted = client_context(pki, pki.client)
    with observer_up_tls(tmp_path, env, trusted) as (internal, public):
        with httpx.Client(verify=trusted, timeout=10) as client:
            health = client.get(f"{internal}/health")
            without_token = client.post(internal + WEBHOOK, content=b"")
            with_token = client.post(internal + WEBHOOK, content=b"", headers={"Authorization": f"Bearer {TOKEN}"})
        with pytest.raises((ssl.SSLError, ConnectionError)):
            tls12_handshake(internal, client_context(pki, None))
        with pytest.raises(httpx.TransportError):  # plain HTTP is not served on the TLS port
            httpx.get(internal.replace("https://", "http://") + "/health", timeout=10)
        public_health = httpx.get(f"{public}/health", timeout=10)  # the other ports stay plain HTTP
    assert health.status_code == 200
    assert unauthorized(without_token, MISSING_MESSAGE, "Bearer")
    assert (with_token.status_code, with_token.json()["errorCode"]) == (400, "INVALID_REQUEST_BODY")
    assert public_health.status_code == 200


@contextlib.contextmanager
def observer_up_tls(tmp_path: Path, env: dict[str, str], context: ssl.SSLContext) -> Iterator[tuple[str, str]]:
    """`observer up` as its own process with an HTTPS internal port (devservers/observer.py polls every port
    over plain HTTP, so it cannot wait for this one); yields (internal https URL, public http URL)."""
    api, internal, otlp = free_port(), free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "observer.cli",
        "up",
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        str(api),
        "--internal-port",
        str(internal),
        "--otlp-port",
        str(otlp),
    ]
    environment = {**os.environ, "LOG_LEVEL": "warning", "JWT_DISABLED": "true", **env}
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    urls = (f"https://127.0.0.1:{internal}", f"http://127.0.0.1:{api}")
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(verify=context, timeout=1) as client:
            while True:
                try:
                    if (
                        client.get(f"{urls[0]}/health").status_code == 200
                        and client.get(f"{urls[1]}/health").status_code == 200
                    ):
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"observer up did not start (exit code {process.poll()})")
                time.sleep(0.1)
        yield urls
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


# ---------------------------------------------------------------------------------------- misconfiguration


def run_observer_up(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`observer up` expected to refuse to start; the timeout only guards against it serving instead."""
    command = [
        sys.executable,
        "-m",
        "observer.cli",
        "up",
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        str(free_port()),
        "--internal-port",
        str(free_port()),
        "--otlp-port",
        str(free_port()),
    ]
    environment = {**os.environ, "LOG_LEVEL": "warning", "JWT_DISABLED": "true", **env}
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)


def _settings(**values: str) -> Settings:
    return Settings(**values)  # type: ignore[arg-type]  # populate_by_name: field names, as the environment would


@pytest.mark.parametrize(
    "case, expected",
    [
        (
            "key without a certificate",
            "OBSERVER_INTERNAL_TLS_KEY_FILE is set but OBSERVER_INTERNAL_TLS_CERT_FILE is not",
        ),
        (
            "client CA without a certificate",
            "OBSERVER_INTERNAL_TLS_CLIENT_CA_FILE needs the internal port to serve TLS",
        ),
        (
            "missing certificate file",
            "OBSERVER_INTERNAL_TLS_CERT_FILE={missing}: cannot read it (No such file or directory)",
        ),
        ("unreadable key file", "OBSERVER_INTERNAL_TLS_KEY_FILE={unreadable}: cannot read it (Is a directory)"),
        ("key of another certificate", "not a PEM certificate with its matching, unencrypted private key"),
        (
            "client CA that is not a certificate",
            "OBSERVER_INTERNAL_TLS_CLIENT_CA_FILE={garbage}: no PEM CA certificate in it",
        ),
    ],
)
def test_tls_misconfiguration_is_refused_with_the_variable_to_fix(
    tmp_path: Path, pki: Pki, case: str, expected: str
) -> None:
    missing, unreadable, garbage = tmp_path / "missing.crt", tmp_path / "unreadable.key", tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    unreadable.mkdir()  # a mount gone wrong; unlike a chmod 0 file, unreadable even when tests run as root
    cert, key = str(pki.server[0]), str(pki.server[1])
    values = {
        "key without a certificate": {"internal_tls_key_file": key},
        "client CA without a certificate": {"internal_tls_client_ca_file": str(pki.ca.path)},
        "missing certificate file": {"internal_tls_cert_file": str(missing), "internal_tls_key_file": key},
        "unreadable key file": {"internal_tls_cert_file": cert, "internal_tls_key_file": str(unreadable)},
        "key of another certificate": {"internal_tls_cert_file": cert, "internal_tls_key_file": str(pki.client[1])},
        "client CA that is not a certificate": {
            "internal_tls_cert_file": cert,
            "internal_tls_key_file": key,
            "internal_tls_client_ca_file": str(garbage),
        },
    }[case]
    with pytest.raises(InternalPortConfigError) as refused:
        _settings(**values).internal_security()
    assert expected.format(missing=missing, unreadable=unreadable, garbage=garbage) in str(refused.value)
